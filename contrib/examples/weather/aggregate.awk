# Reads the one-line reply of `smartpollctl results --json` and prints, as JSON, the aggregate of
# the tasks named in the variable `sources`: the mean temperature and wind, the most common
# condition (the more severe one on a tie), and each source's reading with its run and time.
# Each source's result is a line of JSON that the reply carries as a string, such as
#   "api1":{"task":"api1","run":7,"time":"...","output":"{\"source\":\"api1\",\"temp_c\":12.5,...}\n",...}
# (POSIX awk, so that the example needs nothing beyond a base system.)

# The text that follows `key` in `text` and matches `pattern`, or "".
function after(text, key, pattern,    at) {
    at = index(text, key)
    if (!at) return ""
    text = substr(text, at + length(key))
    return match(text, "^" pattern) ? substr(text, 1, RLENGTH) : ""
}

{ reply = reply $0 }

END {
    severity["clear"] = 1; severity["cloudy"] = 2; severity["rain"] = 3; severity["storm"] = 4
    n = split(sources, names, " ")
    count = 0
    for (i = 1; i <= n; i++) {
        at = index(reply, "\"" names[i] "\":{\"task\":")
        if (!at) continue                           # no successful run yet
        rest = substr(reply, at)
        output = substr(rest, index(rest, "\"output\":\"") + 10)
        output = substr(output, 1, index(output, "\",\"truncated\"") - 1)
        gsub(/\\"/, "\"", output)
        temp = after(output, "\"temp_c\":", "-?[0-9]+(\\.[0-9]+)?")
        wind = after(output, "\"wind_kmh\":", "[0-9]+")
        condition = after(output, "\"condition\":\"", "[a-z]+")
        if (temp == "" || wind == "" || condition == "") continue
        count++
        sum_temp += temp; sum_wind += wind; votes[condition]++
        line[count] = sprintf("    \"%s\": {\"run\": %s, \"time\": \"%s\", \"temp_c\": %.1f, \"wind_kmh\": %d, \"condition\": \"%s\"}",
            names[i], after(rest, "\"run\":", "[0-9]+"), after(rest, "\"time\":\"", "[^\"]+"), temp, wind, condition)
        used = used (used == "" ? "" : " ") names[i]
    }
    if (count == 0) {
        print "publish: no source has a reading yet" > "/dev/stderr"
        exit 1
    }
    best = ""
    for (c in votes)
        if (best == "" || votes[c] > votes[best] || (votes[c] == votes[best] && severity[c] > severity[best])) best = c
    printf "{\n  \"temp_c\": %.1f,\n  \"wind_kmh\": %d,\n  \"condition\": \"%s\",\n  \"sources\": {\n", sum_temp / count, sum_wind / count + 0.5, best
    for (i = 1; i <= count; i++) printf "%s%s\n", line[i], i < count ? "," : ""
    printf "  }\n}\n"
    printf "published: %.1f °C, wind %d km/h, %s (from %s)\n", sum_temp / count, sum_wind / count + 0.5, best, used > "/dev/stderr"
}
