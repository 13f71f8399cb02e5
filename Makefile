# smartpoll: build, test, lint, fuzz, sanitize, benchmark, demo and install. .ci/run runs lint,
# test, the instruction-count gate (bench-check), a short fuzz and the address sanitizer.
SWIFT      ?= swift
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MANPAGES   := $(wildcard man/*.[1-8])

# make install PREFIX=/usr/local DESTDIR=: where the files go (DESTDIR stages a package).
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
UNITDIR     ?= $(PREFIX)/lib/systemd/system

PROGRAMS    := smartpoll-supervisor smartpollctl
UNITS       := $(wildcard contrib/systemd/*.service contrib/systemd/*.socket)
# Without units in contrib/systemd, install writes this plain one.
PLAIN_UNIT  := smartpoll-supervisor.service

# The demo's socket, so that it never meets a supervisor of yours.
DEMO_SOCKET ?= /tmp/smartpoll-demo-$(shell id -u)/supervisor.sock

.PHONY: all deps build release test lint lint-swift format fuzz fuzz-coverage fuzz-live sanitize bench bench-build \
	bench-check bench-baseline demo demo-cluster soak-cluster install uninstall clean

all: build

# From Debian: libjson-c-dev (json-c, the JSON parser), libcurl4-openssl-dev (libcurl, the
# supervisor's HTTP client to etcd) and libmicrohttpd-dev (libmicrohttpd, the HTTP server of its
# metrics endpoint) when pkg-config cannot find them, etcd-server (a real etcd for the cluster
# tests) and mandoc (for make lint) when they are missing. From PyPI: prometheus_client (the
# Prometheus parser contrib/metrics/scrape uses in the tests) when python3 cannot import it,
# for the user (pip's --user; --break-system-packages where the system Python refuses that).
deps:
	@missing=; \
	pkg-config --exists json-c 2>/dev/null || missing="$$missing libjson-c-dev pkg-config"; \
	pkg-config --exists libcurl 2>/dev/null || missing="$$missing libcurl4-openssl-dev pkg-config"; \
	pkg-config --exists libmicrohttpd 2>/dev/null || missing="$$missing libmicrohttpd-dev pkg-config"; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v mandoc >/dev/null || missing="$$missing mandoc"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@python3 -c 'import prometheus_client' 2>/dev/null || { \
		echo "installing prometheus_client (pip, for the user)"; \
		python3 -m pip install --user -q prometheus_client || \
			python3 -m pip install --user -q --break-system-packages prometheus_client; }

build: deps
	$(SWIFT) build

# Release binaries, stripped of debug information (linked with --strip-debug: a quarter of
# smartpollctl's start-up went to the larger file). The supervisor, with the Swift runtime
# linked in, in .build-release/release; smartpollctl fully static (no dynamic loader at all: it
# runs in shell loops) in .build-static/release, a scratch folder of its own so that the two
# flag sets do not rebuild each other. Measured in the README's Performance section.
# smartpollctl is built with Embedded Swift (CTL_BUILD=embedded, the default): no Swift runtime
# starts (the ordinary static one instantiated generic metadata from mangled names, a third of a
# `status`), every generic is specialized, and the binary is 1.4 MB instead of 10. Its libc comes
# through CSmartPollPosix (smartpoll_libc.h: Embedded Swift has no Glibc module), and it links the
# toolchain's Unicode tables (for Character) and libm. A section a function, and the linker drops
# those never called (2.1 MB -> 1.4 MB, 51 -> 43 page faults a `status`). When that build fails
# (a toolchain without Embedded Swift for Linux), or with CTL_BUILD=ordinary, smartpollctl is
# built as before, with the ordinary runtime linked statically: the same sources, the same
# behaviour.
RELEASE_BIN := .build-release/release
STATIC_BIN  := .build-static/release
CTL_BUILD   ?= embedded
# CTL_FALLBACK=no: a failed Embedded Swift build fails make release (CI: code that Embedded Swift
# refuses, a key path for instance, must not slip into smartpollctl's modules unnoticed).
CTL_FALLBACK ?= yes
SWIFT_RESOURCES = $(shell $(SWIFT) -print-target-info | sed -n 's/.*"runtimeResourcePath": "\(.*\)".*/\1/p')
EMBEDDED_FLAGS = -Xswiftc -enable-experimental-feature -Xswiftc Embedded -Xswiftc -wmo \
	-Xlinker $(SWIFT_RESOURCES)/embedded/$(shell uname -m)-unknown-linux-gnu/libswiftUnicodeDataTables.a \
	-Xlinker -lm -Xswiftc -Xclang-linker -Xswiftc -static \
	-Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections -Xlinker --gc-sections
CTL_RELEASE = $(SWIFT) build -c release --scratch-path .build-static --product smartpollctl -Xlinker --strip-debug

release: deps
	$(SWIFT) build -c release --scratch-path .build-release --product smartpoll-supervisor \
		--static-swift-stdlib -Xlinker --strip-debug
	@if [ "$(CTL_BUILD)" = embedded ]; then \
		echo "$(CTL_RELEASE) $(EMBEDDED_FLAGS)"; \
		$(CTL_RELEASE) $(EMBEDDED_FLAGS) && exit 0; \
		if [ "$(CTL_FALLBACK)" = no ]; then echo "make release: the Embedded Swift build of smartpollctl failed" >&2; exit 1; fi; \
		echo "make release: the Embedded Swift build of smartpollctl failed; building it with the ordinary runtime"; \
	fi; \
	echo "$(CTL_RELEASE) -Xswiftc -static-executable"; \
	$(CTL_RELEASE) -Xswiftc -static-executable

# The suite in three runs of swift test, one build: the unit tests (library, protocol,
# supervisor parts), the end-to-end tests, then the live fuzzers. Swift Testing runs
# synchronous tests on the cooperative thread pool, which has one thread a core: in one run on
# 2 cores, two blocking end-to-end tests (the live fuzzers block for a minute each) starved the
# library's async tests past their time limits.
TEST_GROUPS := "--skip SmartPollCtlTests" "--filter SmartPollCtlTests --skip LiveFuzzTests" "--filter LiveFuzzTests"

test: deps
	$(SWIFT) build --build-tests
	@for group in $(TEST_GROUPS); do \
		echo "== swift test $$group"; \
		$(SWIFT) test --skip-build $$group || exit 1; \
	done

# Fuzzing (fuzz-coverage, then fuzz-live). First coverage-guided, with libFuzzer, FUZZ_TIME seconds for each target (or
# FUZZ_RUNS inputs): smartpoll-fuzz-protocol feeds LineFramer and every decoder of the protocol,
# smartpoll-fuzz-config the configuration reader; the properties checked are the tests'
# (ProtocolFuzzOracle, ConfigurationFuzzOracle). Seeds: the golden fixtures and example
# configurations; the corpus grows in .build-fuzz/corpus. A crashing input is written to
# .build-fuzz/artifacts and fails the target: keep it under Tests/*/Fixtures/fuzz* as a
# regression input. FUZZ_SANITIZE=fuzzer,address adds AddressSanitizer (json-c's allocations
# checked; a third of the speed). Linked with lld: gold stops with an internal error
# (format_file_lineno) on SwiftPM's --defsym main beside libFuzzer's main.
# Then the live fuzzers of LiveFuzzTests against a running supervisor: LIVE_FUZZ_FRAMES request
# lines, LIVE_FUZZ_RUNS directive runs, LIVE_FUZZ_CONFIGS files for --check.
FUZZ_TIME     ?= 60
FUZZ_RUNS     ?= -1
# 0: a new random seed each run (exploring); CI gives a fixed seed and a fixed count of inputs,
# so that its fuzzing replays the same inputs every time and cannot turn red by chance.
FUZZ_SEED     ?= 0
FUZZ_SANITIZE ?= fuzzer
LIVE_FUZZ_FRAMES  ?= 1000000
LIVE_FUZZ_RUNS    ?= 1000
LIVE_FUZZ_CONFIGS ?= 1000
FUZZ_DIR   := .build-fuzz
FUZZ_BUILD := SMARTPOLL_FUZZ=1 $(SWIFT) build -c release --scratch-path $(FUZZ_DIR) \
	-Xswiftc -sanitize=$(FUZZ_SANITIZE) -Xswiftc -use-ld=lld
FUZZ_RUN   := SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:malloc_context_size=0
PROTOCOL_FIXTURES := Tests/SmartPollProtocolTests/Fixtures

fuzz: fuzz-coverage fuzz-live

fuzz-coverage: deps
	$(FUZZ_BUILD) --product smartpoll-fuzz-protocol
	$(FUZZ_BUILD) --product smartpoll-fuzz-config
	rm -rf $(FUZZ_DIR)/seeds
	mkdir -p $(FUZZ_DIR)/seeds/protocol $(FUZZ_DIR)/seeds/config $(FUZZ_DIR)/corpus/protocol \
		$(FUZZ_DIR)/corpus/config $(FUZZ_DIR)/artifacts
	# A protocol input starts with two control bytes (the line limit, where the stream is cut).
	for file in $(PROTOCOL_FIXTURES)/requests/*.json $(PROTOCOL_FIXTURES)/replies/*.json \
		$(PROTOCOL_FIXTURES)/events/*.json $(PROTOCOL_FIXTURES)/invalid/*.txt $(PROTOCOL_FIXTURES)/fuzz/*; do \
		[ -f "$$file" ] || continue; \
		{ printf '\000\000'; cat "$$file"; } > $(FUZZ_DIR)/seeds/protocol/$$(basename "$$file") || exit 1; \
	done
	{ printf '\000\001'; cat $(PROTOCOL_FIXTURES)/requests/*.json; } > $(FUZZ_DIR)/seeds/protocol/all-requests
	cp contrib/fuzz/seeds-config/* contrib/examples/weather/smartpoll.json $(FUZZ_DIR)/seeds/config/
	$(FUZZ_RUN) $(FUZZ_DIR)/release/smartpoll-fuzz-protocol -max_total_time=$(FUZZ_TIME) -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) \
		-dict=contrib/fuzz/protocol.dict -artifact_prefix=$(FUZZ_DIR)/artifacts/protocol- -print_final_stats=1 \
		$(FUZZ_DIR)/corpus/protocol $(FUZZ_DIR)/seeds/protocol
	$(FUZZ_RUN) $(FUZZ_DIR)/release/smartpoll-fuzz-config -max_total_time=$(FUZZ_TIME) -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) \
		-max_len=16384 -dict=contrib/fuzz/config.dict -artifact_prefix=$(FUZZ_DIR)/artifacts/config- \
		-print_final_stats=1 $(FUZZ_DIR)/corpus/config $(FUZZ_DIR)/seeds/config

fuzz-live: deps
	$(SWIFT) build --build-tests
	SMARTPOLL_LIVE_FUZZ_FRAMES=$(LIVE_FUZZ_FRAMES) SMARTPOLL_LIVE_FUZZ_RUNS=$(LIVE_FUZZ_RUNS) \
		SMARTPOLL_LIVE_FUZZ_CONFIGS=$(LIVE_FUZZ_CONFIGS) $(SWIFT) test --skip-build --filter LiveFuzzTests

# The test suite under ThreadSanitizer, then under AddressSanitizer (SANITIZERS=thread or
# SANITIZERS=address for one), each built in a folder of its own (.build-tsan, .build-asan); the
# supervisors and smartpollctl that the end-to-end tests start are sanitized too. Every report
# of every process goes to .build-?san/reports, and one report fails the target, as does a
# failing test. LeakSanitizer skips what contrib/sanitize/lsan.supp lists (the test frameworks,
# and smartpollctl, which exits holding its reply). Under a sanitizer the live fuzzers are
# shortened, at most two tests run at once, limits on time and memory are scaled
# (SMARTPOLL_SANITIZER), and the weather example, whose tests race its rate limits, is skipped.
SANITIZERS   ?= thread address
SANITIZE_ENV := SMARTPOLL_LIVE_FUZZ_FRAMES=20000 SMARTPOLL_LIVE_FUZZ_RUNS=60 SMARTPOLL_LIVE_FUZZ_CONFIGS=60 \
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=2

sanitize: deps
	@for sanitizer in $(SANITIZERS); do \
		case $$sanitizer in \
			thread) dir=.build-tsan ;; \
			address) dir=.build-asan ;; \
			*) echo "make sanitize: unknown sanitizer $$sanitizer (thread or address)"; exit 2 ;; \
		esac; \
		echo "== $$sanitizer sanitizer: building in $$dir"; \
		rm -rf $$dir/reports && mkdir -p $$dir/reports || exit 1; \
		$(SWIFT) build --build-tests --sanitize=$$sanitizer --scratch-path $$dir || exit 1; \
		for group in $(TEST_GROUPS); do \
			$(SANITIZE_ENV) SMARTPOLL_SANITIZER=$$sanitizer \
				TSAN_OPTIONS="log_path=$(CURDIR)/$$dir/reports/tsan" \
				ASAN_OPTIONS="log_path=$(CURDIR)/$$dir/reports/asan:quarantine_size_mb=16:detect_leaks=1" \
				LSAN_OPTIONS="suppressions=$(CURDIR)/contrib/sanitize/lsan.supp:print_suppressions=0" \
				$(SWIFT) test --skip-build --sanitize=$$sanitizer --scratch-path $$dir --skip WeatherExampleTests \
				$$group || { echo "$$sanitizer sanitizer: a test failed"; exit 1; }; \
		done; \
		if [ -n "$$(ls $$dir/reports)" ]; then \
			echo "$$sanitizer sanitizer: reports in $$dir/reports:"; head -n 60 $$dir/reports/*; exit 1; \
		fi; \
		echo "== $$sanitizer sanitizer: every test passed, no report"; \
	done

# The man pages without a warning, the shell and Python files without a syntax error, and the
# Swift sources clean under swift format with .swift-format (lint-swift; `make format` fixes
# what it can; LINT_SWIFT=0 skips it).
LINT_SWIFT ?= 1

lint: deps $(if $(filter 1,$(LINT_SWIFT)),lint-swift)
	mandoc -T lint -W warning $(MANPAGES)
	bash -n contrib/completions/smartpollctl.bash
	for script in contrib/bench/run contrib/bench/count contrib/examples/cluster/run; do bash -n "$$script" || exit 1; done
	for script in contrib/bench/compare contrib/metrics/scrape contrib/soak/cluster; do \
		python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$$script" || exit 1; \
	done
	for script in contrib/examples/weather/api contrib/examples/weather/sky \
		contrib/examples/weather/set-sky contrib/examples/weather/publish; do sh -n "$$script" || exit 1; done

# Swift style: the toolchain's swift format with .swift-format (4 spaces, 120 columns, the
# brace and wrapping habits of the code). lint-swift fails on any finding; format rewrites the
# files in place. Symbolic links (contrib/fuzz's oracles) are skipped: their targets are in Tests.
# Rules off by default and left off, each with the findings it would add today:
# AllPublicDeclarationsHaveDocumentation (140: documentation states contracts where there is
# one, not on every public member), BeginDocumentationCommentWithOneLineSummary (70: a summary
# is a sentence, wrapped when long), ValidateDocumentationComments (7: contracts are prose, not
# Parameters/Returns sections), NeverForceUnwrap (57: where an invariant makes nil impossible),
# NeverUseImplicitlyUnwrappedOptionals (1: the supervisor's two-step start), UseEarlyExits (3:
# if/else reads better there than guard). On by default and turned off: DoNotUseSemicolons (46
# lines: one-line case bodies and { if case ... { return true }; return false } matchers, where
# splitting gains nothing). Turned on because the code already keeps them: OmitExplicitReturns,
# UseWhereClausesInForLoops, NeverUseForceTry, NoLeadingUnderscores,
# AlwaysUseLiteralForEmptyCollectionInit, NoEmptyLinesOpeningClosingBraces.
SWIFT_STYLE_PATHS := Package.swift Sources Tests contrib

lint-swift:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_STYLE_PATHS)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SWIFT_STYLE_PATHS)

# Figures, not pass/fail: one JSON line per scenario on stdout, then tables on stderr.
# The in-process library figures (smartpoll-bench), then the real binaries against C
# references side by side (contrib/bench/run). BENCH_ARGS: --quick, --repeat N, --only NAME,
# --tasks N,N... (smartpoll-bench's cycles at these task counts only; it also prints the CPU
# time a cycle, which the machine's load moves less than the rate)
# (a scenario of either: cycles, schedule_call, cadence, idle, protocol; ctl_status,
# ctl_run_wait, spawn_1_task, spawn_8_tasks, lateness, protocol, idle_100_tasks,
# idle_10000_tasks, noisy, state5000, peers with PEERS=1), --seconds N (how long each phase of
# noisy and state5000 measures: the loop's lateness and latency under load, see contrib/bench/run).
bench: bench-build
	$(RELEASE_BIN)/smartpoll-bench $(BENCH_ARGS)
	SUPERVISOR=$(RELEASE_BIN)/smartpoll-supervisor CTL=$(STATIC_BIN)/smartpollctl contrib/bench/run $(BENCH_ARGS)

# The release binaries and smartpoll-bench, built as make release builds the supervisor.
bench-build: release
	$(SWIFT) build -c release --scratch-path .build-release --product smartpoll-bench \
		--static-swift-stdlib -Xlinker --strip-debug

# The regression gate, pass/fail (in .ci/run): instructions counted by valgrind's callgrind for
# fixed work, which the machine's load does not change (run to run they differ by under 1 %):
# smartpollctl status (whole process) against a canned reply of 100 tasks; ping and status(100)
# requests and replies decoded and encoded in-process (smartpoll-bench --count); 100,000
# SchedulerStateMachine operations with a fixed seed; the supervisor spawning /bin/true ten
# times, and starting and stopping without a run. contrib/bench/count measures and says what
# each count includes; contrib/bench/compare prints name, baseline, now and change, and fails
# when a count grew more than 10 % over contrib/bench/baseline.tsv (or is missing). About 20 s
# of CPU once the release binaries are built.
# make bench-baseline: measures afresh and rewrites contrib/bench/baseline.tsv (printing the
# change first); commit it with a message that explains the growth, or the gain.
BENCH_COUNT := SUPERVISOR=$(RELEASE_BIN)/smartpoll-supervisor CTL=$(STATIC_BIN)/smartpollctl \
	BENCH=$(RELEASE_BIN)/smartpoll-bench contrib/bench/count
BASELINE    := contrib/bench/baseline.tsv

bench-check: bench-build
	mkdir -p .build-bench
	$(BENCH_COUNT) > .build-bench/counts.tsv
	contrib/bench/compare $(BASELINE) .build-bench/counts.tsv

bench-baseline: bench-build
	mkdir -p .build-bench
	$(BENCH_COUNT) > .build-bench/counts.tsv
	if [ -f $(BASELINE) ]; then contrib/bench/compare $(BASELINE) .build-bench/counts.tsv || true; fi
	{ echo "# Instructions (callgrind Ir) of make bench-check's fixed work, NAME<TAB>COUNT; see contrib/bench/count."; \
	  echo "# Written by make bench-baseline: the commit that changes it says why."; \
	  cat .build-bench/counts.tsv; } > $(BASELINE)

# The weather example on a cluster (contrib/examples/cluster/run): a local 3-member etcd, three
# supervisors, a failover after SIGKILL and a graceful handover; KEEP=1 leaves it running.
demo-cluster: build
	contrib/examples/cluster/run "$$($(SWIFT) build --show-bin-path)"

# The cluster's soak (contrib/soak/cluster), not part of make test: a local 3-member etcd, three
# supervisors, FAILOVERS failovers (100, in turn kill -9 and SIGSTOP of the leader and the loss
# of etcd's quorum, with LEASE=2s), then the invariants (no two runs of a task overlap, fences
# never go down, no acknowledged result is lost, etcd's history stays compacted), failover times
# and etcd's size; exits 1 when an invariant fails. About 8 minutes; LOGS=DIR keeps the logs.
soak-cluster: build
	contrib/soak/cluster "$$($(SWIFT) build --show-bin-path)"

# The weather example (contrib/examples/weather) in the foreground, from a clean state.
demo: build
	@bin=$$($(SWIFT) build --show-bin-path); \
	example=$(CURDIR)/contrib/examples/weather; \
	echo "smartpoll demo: the weather aggregator of $$example"; \
	echo "It runs in the foreground; Ctrl-C stops it. In a second terminal, try:"; \
	echo ""; \
	echo "  export PATH=\"$$bin:\$$PATH\" SMARTPOLL_SOCKET=$(DEMO_SOCKET)"; \
	echo "  smartpollctl status                          # the loop, and a table of the five tasks"; \
	echo "  cat $$example/published.json"; \
	echo "                                               # the aggregate, rewritten when an input changed"; \
	echo "  smartpollctl watch                           # events as they happen (Ctrl-C ends it)"; \
	echo "  smartpollctl emit set-sky \"storm 31.5 90\"    # change the weather: every API polls now"; \
	echo "  smartpollctl run api2 --wait; echo \$$?        # poll one API now, and get its exit status"; \
	echo "  smartpollctl unschedule sky                  # the weather holds: soon nothing is published"; \
	echo "  smartpollctl run sky                         # and it changes again"; \
	echo "  smartpollctl results                         # every task's last result"; \
	echo ""; \
	cd "$$example" && rm -rf state published.json published.json.tmp && \
	PATH="$$bin:$$PATH" exec "$$bin/smartpoll-supervisor" --config smartpoll.json --socket $(DEMO_SOCKET)

# Release binaries, man pages, completions for bash, zsh and fish, and the systemd units of
# contrib/systemd (with /usr/local/bin in them replaced by BINDIR), or a plain service unit.
install: release
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) \
		$(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(RELEASE_BIN)/smartpoll-supervisor $(STATIC_BIN)/smartpollctl $(DESTDIR)$(BINDIR)/
	for page in $(MANPAGES); do \
		section=$${page##*.}; \
		install -d $(DESTDIR)$(MANDIR)/man$$section && \
		install -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$section/ || exit 1; \
	done
	for program in $(PROGRAMS); do \
		install -m 0644 contrib/completions/smartpollctl.bash $(DESTDIR)$(BASHCOMPDIR)/$$program || exit 1; \
	done
	install -m 0644 contrib/completions/_smartpollctl $(DESTDIR)$(ZSHCOMPDIR)/_smartpollctl
	install -m 0644 contrib/completions/smartpollctl.fish contrib/completions/smartpoll-supervisor.fish \
		$(DESTDIR)$(FISHCOMPDIR)/
ifneq ($(UNITS),)
	for unit in $(UNITS); do \
		sed 's|/usr/local/bin/|$(BINDIR)/|g' $$unit > $(DESTDIR)$(UNITDIR)/$${unit##*/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${unit##*/} || exit 1; \
	done
else
	printf '%s\n' '[Unit]' 'Description=smartpoll supervisor' 'Documentation=man:smartpoll-supervisor(8)' '' \
		'[Service]' 'Type=exec' 'ExecStart=$(BINDIR)/smartpoll-supervisor --config /etc/smartpoll/smartpoll.json' \
		'TimeoutStopSec=30' 'Restart=on-failure' '' '[Install]' 'WantedBy=multi-user.target' \
		> $(DESTDIR)$(UNITDIR)/$(PLAIN_UNIT)
	chmod 0644 $(DESTDIR)$(UNITDIR)/$(PLAIN_UNIT)
endif

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGRAMS))
	for page in $(MANPAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${page##*.}/$${page##*/}; done
	rm -f $(addprefix $(DESTDIR)$(BASHCOMPDIR)/,$(PROGRAMS)) $(DESTDIR)$(ZSHCOMPDIR)/_smartpollctl \
		$(DESTDIR)$(FISHCOMPDIR)/smartpollctl.fish $(DESTDIR)$(FISHCOMPDIR)/smartpoll-supervisor.fish
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNITS)) $(PLAIN_UNIT))

clean:
	rm -rf .build .build-release .build-static .build-bench .build-fuzz .build-tsan .build-asan
