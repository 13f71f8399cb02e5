# bash completion for smartpollctl and smartpoll-supervisor.
# Installed by `make install` as bash-completion/completions/smartpollctl (and, the same file,
# as .../smartpoll-supervisor); or load it by hand: source contrib/completions/smartpollctl.bash
#
# Task names are asked from the running supervisor (`smartpollctl --json status`, on the socket
# given with --socket on the line being completed, else the default one); when none answers,
# none are offered, silently.

_smartpollctl_commands="status schedule unschedule stop-timer run cancel pause resume result results emit watch logs history start stop restart reload shutdown ping metrics hook help"
_smartpollctl_options="--socket --json --timeout --utc --help --version"
# Global options may also stand after the command.
_smartpollctl_global="--socket --json --timeout --utc"

# Prints the task names of the supervisor on socket $2 (or the default one), asking it with the
# smartpollctl of $1.
_smartpollctl_tasks() {
    local program=$1 socket=$2 reply
    local -a arguments=(--timeout 1s)
    [[ -n $socket ]] && arguments=(--socket "$socket" "${arguments[@]}")
    command -v "$program" >/dev/null 2>&1 || program=smartpollctl
    reply=$("$program" "${arguments[@]}" --json status 2>/dev/null) || return 0
    # Names are letters, digits and _ - . : @; inside JSON strings every quote is escaped, so
    # "name":" only occurs where a task's name begins.
    while [[ $reply =~ \"name\":\"([^\"]*)\" ]]; do
        printf '%s\n' "${BASH_REMATCH[1]}"
        reply=${reply#*"${BASH_REMATCH[0]}"}
    done
}

_smartpollctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local socket="" command="" index=1
    COMPREPLY=()

    # The command is the first word that is no option (nor an option's value); --socket may
    # stand anywhere.
    local position
    for (( position = 1; position < COMP_CWORD; position++ )); do
        [[ ${COMP_WORDS[position]} == --socket ]] && socket=${COMP_WORDS[position+1]}
    done
    while (( index < COMP_CWORD )); do
        case ${COMP_WORDS[index]} in
            --socket) socket=${COMP_WORDS[index+1]}; (( index += 2 )) ;;
            --timeout) (( index += 2 )) ;;
            -*) (( index += 1 )) ;;
            *) command=${COMP_WORDS[index]}; break ;;
        esac
    done

    case $prev in
        --socket) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
        --timeout | --at) return 0 ;;
    esac

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$_smartpollctl_options" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_smartpollctl_commands" -- "$cur"))
        fi
        return 0
    fi

    # The words after the command that are not options: its arguments so far.
    local -a arguments=()
    local word skip=no
    for word in "${COMP_WORDS[@]:index+1:COMP_CWORD-index-1}"; do
        if [[ $skip == yes ]]; then skip=no; continue; fi
        case $word in
            --socket | --timeout | --at | -n) skip=yes ;;
            --* | -f) ;;
            *) arguments+=("$word") ;;
        esac
    done

    local options="" tasks=no
    case $command in
        status | watch) tasks=yes ;;
        schedule) options="--sooner --at"; (( ${#arguments[@]} == 0 )) && tasks=yes ;;
        unschedule | stop-timer | cancel | pause | resume | result) (( ${#arguments[@]} == 0 )) && tasks=yes ;;
        run) options="--wait --output"; (( ${#arguments[@]} == 0 )) && tasks=yes ;;
        logs) options="-n -f"; (( ${#arguments[@]} == 0 )) && tasks=yes ;;
        history) options="-n"; (( ${#arguments[@]} == 0 )) && tasks=yes ;;
        start | stop | restart) options="--wait" ;;
        emit | results | reload | shutdown | ping | metrics) ;;
        hook)
            if (( ${#arguments[@]} == 0 )); then
                COMPREPLY=($(compgen -W "schedule unschedule stop-timer" -- "$cur"))
                return 0
            fi
            [[ ${arguments[0]} == schedule ]] && options="--sooner --at"
            (( ${#arguments[@]} == 1 )) && tasks=yes
            ;;
        *) return 0 ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options $_smartpollctl_global" -- "$cur"))
    elif [[ $tasks == yes ]]; then
        local IFS=$'\n'
        COMPREPLY=($(compgen -W "$(_smartpollctl_tasks "${COMP_WORDS[0]}" "$socket")" -- "$cur"))
    fi
    return 0
}

_smartpoll_supervisor() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    case $prev in
        --config | --socket) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
        --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return 0 ;;
        --log-level) COMPREPLY=($(compgen -W "debug info warning error" -- "$cur")); return 0 ;;
    esac
    COMPREPLY=($(compgen -W "--config --socket --check --log-format --log-level --help --version" -- "$cur"))
    return 0
}

complete -F _smartpollctl smartpollctl
complete -F _smartpoll_supervisor smartpoll-supervisor
