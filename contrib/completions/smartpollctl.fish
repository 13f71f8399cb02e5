# fish completion for smartpollctl. Installed by `make install` in
# fish/vendor_completions.d; any folder of $fish_complete_path will do.
#
# Task names are asked from the running supervisor (`smartpollctl --json status`, on the socket
# given with --socket on the line being completed, else the default one); when none answers,
# none are offered, silently.

function __smartpollctl_tasks
    set -l tokens (commandline -opc)
    set -l arguments --timeout 1s
    set -l index (contains -i -- --socket $tokens)
    and test $index -lt (count $tokens)
    and set arguments --socket $tokens[(math $index + 1)] $arguments
    # Names are letters, digits and _ - . : @; inside JSON strings every quote is escaped, so
    # "name":" only occurs where a task's name begins.
    smartpollctl $arguments --json status 2>/dev/null \
        | string match -ar '"name":"[^"]*"' | string replace -r '^"name":"(.*)"$' '$1'
end

set -l commands status schedule unschedule stop-timer run cancel pause resume result results emit watch logs history start stop restart reload shutdown ping metrics hook help
set -l before_command "not __fish_seen_subcommand_from $commands"

complete -c smartpollctl -f
complete -c smartpollctl -l socket -r -F -d 'Control socket'
complete -c smartpollctl -l json -d 'Print replies and events as JSON lines'
complete -c smartpollctl -l timeout -x -d 'Give up after this long waiting for a reply'
complete -c smartpollctl -l utc -d 'Show times in UTC instead of local time'
complete -c smartpollctl -s h -l help -d 'Print the usage'
complete -c smartpollctl -n $before_command -l version -d 'Print the version'

complete -c smartpollctl -n $before_command -a status -d 'Loop state and a table of tasks'
complete -c smartpollctl -n $before_command -a schedule -d 'Schedule a task after a delay or at a time'
complete -c smartpollctl -n $before_command -a unschedule -d "Clear a task's schedule"
complete -c smartpollctl -n $before_command -a stop-timer -d 'Stop the pending timer; print whether the task is ready'
complete -c smartpollctl -n $before_command -a run -d 'Run a task now (--wait: exit with its status)'
complete -c smartpollctl -n $before_command -a cancel -d "End a task's running process"
complete -c smartpollctl -n $before_command -a pause -d 'Keep a task from starting (run is refused)'
complete -c smartpollctl -n $before_command -a resume -d 'Let a paused task start again'
complete -c smartpollctl -n $before_command -a logs -d "Print a task's last stderr lines (-f: follow)"
complete -c smartpollctl -n $before_command -a history -d "Print a task's last finished runs, newest first"
complete -c smartpollctl -n $before_command -a result -d 'Print the last successful output of a task'
complete -c smartpollctl -n $before_command -a results -d "Print every task's last successful output"
complete -c smartpollctl -n $before_command -a emit -d 'Trigger an event hook'
complete -c smartpollctl -n $before_command -a watch -d 'Print events as they happen'
complete -c smartpollctl -n $before_command -a start -d 'Start the loop'
complete -c smartpollctl -n $before_command -a stop -d 'Stop the loop'
complete -c smartpollctl -n $before_command -a restart -d 'Restart the loop'
complete -c smartpollctl -n $before_command -a reload -d 'Re-read the configuration'
complete -c smartpollctl -n $before_command -a shutdown -d 'End every task and stop the supervisor'
complete -c smartpollctl -n $before_command -a ping -d 'Version, pid and uptime'
complete -c smartpollctl -n $before_command -a metrics -d 'Counters and histograms in the Prometheus text format'
complete -c smartpollctl -n $before_command -a hook -d 'Inside a task: write a directive'
complete -c smartpollctl -n $before_command -a help -d 'Print the usage'

complete -c smartpollctl -n '__fish_seen_subcommand_from hook; and not __fish_seen_subcommand_from schedule unschedule stop-timer' \
    -a 'schedule unschedule stop-timer' -d 'Directive'
complete -c smartpollctl -n '__fish_seen_subcommand_from status watch schedule unschedule stop-timer run cancel pause resume result logs history' \
    -a '(__smartpollctl_tasks)' -d Task
complete -c smartpollctl -n '__fish_seen_subcommand_from run start stop restart' -l wait -d 'Wait until it is done'
complete -c smartpollctl -n '__fish_seen_subcommand_from run' -l output -d "With --wait, print the run's own stdout"
complete -c smartpollctl -n '__fish_seen_subcommand_from logs' -s n -x -d 'Only the last N lines'
complete -c smartpollctl -n '__fish_seen_subcommand_from logs' -s f -d 'Follow: print new lines until interrupted'
complete -c smartpollctl -n '__fish_seen_subcommand_from history' -s n -x -d 'Only the last N runs'
complete -c smartpollctl -n '__fish_seen_subcommand_from schedule' -l sooner -d 'Keep the sooner of the old and the new schedule'
complete -c smartpollctl -n '__fish_seen_subcommand_from schedule' -l at -x -d 'An RFC 3339 time instead of a delay'
