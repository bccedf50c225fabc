# TcpLab: `make run` runs the scenario catalogue in simulation (no root needed);
# `make test` runs every test (TAP/namespace tests need root or CAP_NET_ADMIN, else they skip).
DOTNET ?= dotnet
CONFIG ?= Release
LAB     = lab/TcpLab.Lab/bin/$(CONFIG)/net10.0/tcplab

.PHONY: all build run test deps bench clean linux-catalogue

all: build

build:
	$(DOTNET) build TcpLab.sln -c $(CONFIG) -nologo -v q

run: build
	$(LAB) run --out out

# One test assembly at a time: the real-time runs against the kernel (Integration.Tests) should
# not share this machine's cores with the simulation tests; every assembly runs even if one fails.
test: deps build
	@rc=0; for project in tests/*/*.csproj; do \
	  $(DOTNET) test $$project -c $(CONFIG) --no-build -nologo || rc=1; \
	done; exit $$rc

# Debian packages the tests use (tshark reads our pcapng, iproute2 builds namespaces,
# ping and curl are the Linux clients of the interop tests).
# Installed only when missing and only if we may (root + apt-get); otherwise the tests
# that need them skip with a message saying what is missing.
DEB_PACKAGES = iproute2 iputils-ping tshark tcpdump iptables python3 curl
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: missing Debian packages:$$missing (tests that need them will skip)"; fi; \
	fi

# Every catalogue experiment against the real kernel (root; takes the experiments' own time).
# ack-loss-idle's 2 h 11 min keepalive runs beside the rest (about 75 min), on addresses of its
# own; its table is printed at the end. `make test` runs the short ones.
LONG_RUN = ack-loss-idle
CATALOGUE = $(filter-out $(LONG_RUN),$(basename $(notdir $(wildcard scenarios/*.yaml))))
linux-catalogue: build
	@mkdir -p out
	@$(LAB) run $(LONG_RUN) --peer linux --out out > out/$(LONG_RUN).log 2>&1 & long=$$!; \
	$(LAB) run $(CATALOGUE) --peer linux --out out; rc=$$?; \
	echo "waiting for $(LONG_RUN) (log: out/$(LONG_RUN).log)"; \
	wait $$long || rc=1; cat out/$(LONG_RUN).log; exit $$rc

bench:
	$(DOTNET) run -c Release --project tools/TcpLab.Benchmarks -- --filter '*'

clean:
	$(DOTNET) clean TcpLab.sln -nologo -v q
	rm -rf out
