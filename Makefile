# smartpoll: build, test and benchmark. `make test` is what CI runs (.ci/run).
SWIFT      ?= swift
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE    := $(SWIFT) build -c release

.PHONY: all deps build release test bench demo clean

all: build

# json-c comes from Debian's libjson-c-dev; install it only when pkg-config cannot find it.
deps:
	@pkg-config --exists json-c || { \
		echo "installing libjson-c-dev"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libjson-c-dev pkg-config; }

build: deps
	$(SWIFT) build

# Release binaries in .build-release/release: the supervisor with the Swift runtime linked in,
# smartpollctl fully static (no dynamic loader work at all: it runs in shell loops, and this
# halves its start-up; measured in the README's Performance section).
release: deps
	$(SWIFT) build -c release --scratch-path .build-release --product smartpoll-supervisor --static-swift-stdlib
	$(SWIFT) build -c release --scratch-path .build-release --product smartpollctl -Xswiftc -static-executable

test: deps
	$(SWIFT) test

# Figures, not pass/fail: one JSON line per scenario on stdout.
bench: deps
	$(RELEASE) --product smartpoll-bench
	$$($(SWIFT) build -c release --show-bin-path)/smartpoll-bench $(BENCH_ARGS)

# The supervisor in the foreground on contrib/examples/demo; try smartpollctl from another terminal.
demo: build
	@bin=$$($(SWIFT) build --show-bin-path); \
	echo "In another terminal:"; \
	echo "  export PATH=$$bin:\$$PATH SMARTPOLL_SOCKET=/tmp/smartpoll-demo/supervisor.sock"; \
	echo "  smartpollctl status; smartpollctl watch; smartpollctl emit refresh; smartpollctl result api1"; \
	echo "Stop with Ctrl-C."; \
	cd contrib/examples/demo && PATH="$$bin:$$PATH" exec "$$bin/smartpoll-supervisor" --config smartpoll.json

clean:
	rm -rf .build
