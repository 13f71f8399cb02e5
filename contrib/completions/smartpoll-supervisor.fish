# fish completion for smartpoll-supervisor. Installed by `make install` in
# fish/vendor_completions.d.
complete -c smartpoll-supervisor -f
complete -c smartpoll-supervisor -l config -r -F -d 'Configuration file'
complete -c smartpoll-supervisor -l socket -r -F -d 'Control socket'
complete -c smartpoll-supervisor -l check -d 'Validate the configuration and exit'
complete -c smartpoll-supervisor -l log-format -x -a 'text json' -d 'Log line format'
complete -c smartpoll-supervisor -l log-level -x -a 'debug info warning error' -d 'Lowest level logged'
complete -c smartpoll-supervisor -s h -l help -d 'Print the usage'
complete -c smartpoll-supervisor -l version -d 'Print the version'
