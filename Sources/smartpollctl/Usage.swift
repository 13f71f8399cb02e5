let usage = """
    usage: smartpollctl [--socket PATH] [--json] [--timeout DUR] [--utc] COMMAND [ARGS]

    Talks to smartpoll-supervisor over its control socket.

    Commands:
      status [TASK...]                  loop state and a table of tasks (--json for scripts)
      schedule TASK DELAY [--sooner]    schedule after DELAY (250ms, 10s, 1m30s; 0: now; negative: clear)
      schedule TASK --at TIME [--sooner]
                                        schedule at an RFC 3339 time
      unschedule TASK                   clear the task's schedule
      stop-timer TASK                   stop the pending timer; prints whether the task is ready
      run TASK [--wait [--output]]      run now; with --wait, exit with the run's status (and say
                                        how it failed); --output prints that run's own stdout
      cancel TASK                       end the task's running process (TERM, grace, KILL)
      pause TASK                        keep the task from starting (its schedule still moves;
                                        a run in flight finishes); run is refused while paused
      resume TASK                       let it start again; if it fell due meanwhile, at once
      result TASK                       print the last successful output
      results                           print every task's last successful output
      emit HOOK [DATA | -]              trigger an event hook; - reads DATA from stdin
      watch [TASK...]                   print events as they happen, until interrupted
      logs TASK [-n N] [-f]             print the task's last stderr lines (all kept, or the last
                                        N); -f then prints new ones until interrupted
      history TASK [-n N]               print the task's last finished runs, newest first (all
                                        kept, or the last N)
      start | stop | restart [--wait]   start, stop or restart the loop
      reload                            re-read the configuration file and apply what changed
                                        (unchanged tasks keep their schedule, run and result)
      shutdown                          end every task and stop the supervisor
      ping                              version, pid and uptime
      metrics                           the supervisor's counters and histograms (run counts by
                                        outcome, durations, lateness), in the Prometheus text format
      hook schedule [TASK] DELAY [--sooner] | hook schedule [TASK] --at TIME [--sooner]
      hook unschedule [TASK] | hook stop-timer [TASK]
                                        inside a task: write a directive to $SMARTPOLL_HOOK_FD;
                                        TASK defaults to the running task ($SMARTPOLL_TASK)

    Options (--socket, --json, --timeout and --utc may stand anywhere on the line):
      --socket PATH    control socket (default: $SMARTPOLL_SOCKET, $XDG_RUNTIME_DIR/smartpoll/
                       supervisor.sock, /run/smartpoll/supervisor.sock for root,
                       /tmp/smartpoll-$UID/supervisor.sock otherwise)
      --json           print the supervisor's reply (or events) as JSON lines
      --timeout DUR    give up after DUR waiting for a reply (exit 75)
      --utc            show times in UTC (default: local time, as TZ says)
      --               the words after it are arguments, even those that look like options
      -h, --help       this help
      --version        the version

    Exit status: 0 success; 1 the supervisor answered with an error; 2 usage; 69 supervisor
    unreachable; 75 timed out. run --wait exits with the task's status (128+N for signal N, 124
    for a timeout). See smartpollctl(1).

    """
