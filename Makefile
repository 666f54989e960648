# TokenGate — one machine, two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
DOTNET ?= dotnet
CONFIG ?= Debug

.PHONY: help build build-apps services services-stop run test test-stress fuzz chaos bench bench-portal bench-operator crds clean tools images verify

help:
	@echo "make run            build, start PostgreSQL+Redis, mock upstream, operator, proxy, portal"
	@echo "make test           start services, build, run every test project"
	@echo "make test-stress    run the suite N times (default 10) under stress-ng, list flaky tests (N=20 make test-stress)"
	@echo "make fuzz           the long hostile-client pass over every proxy route (docs/reliability.md)"
	@echo "make chaos          the fault runs ten times longer than in make test (TG_CHAOS_SCALE; docs/reliability.md)"
	@echo "make verify         check money conservation (ledger vs Redis) of the make run stack (VERIFY_ARGS=--json)"
	@echo "make services       start local PostgreSQL (127.0.0.1:55432) and Redis (127.0.0.1:56379)"
	@echo "make services-stop  stop them"
	@echo "make bench          run the benchmark (see docs/benchmarks.md)"
	@echo "make bench-portal   time the portal's pages over 10 million usage rows (docs/benchmarks.md, Portal)"
	@echo "make bench-operator the operator with 10,000 ApiKeys (cold start, idle CPU, rotation storm) and the proxy's policy cache with 100,000 keys"
	@echo "make crds           regenerate CRDs into config/crd and charts/tokengate/crds"
	@echo "make tools          install Helm 3 (and kubectl) into .tools/ (config/local/tools.sh)"
	@echo "make images         build the operator, proxy and portal images (docker, podman or buildah)"

build:
	$(DOTNET) build Gateway.sln -c $(CONFIG) -nologo -clp:NoSummary

services:
	@bash config/local/services.sh start

services-stop:
	@bash config/local/services.sh stop

APPS := operator/Gateway.Operator proxy/Gateway.Proxy portal/Gateway.Portal tests/Gateway.MockUpstream

build-apps:
	@for p in $(APPS); do $(DOTNET) build $$p -c $(CONFIG) -nologo -clp:NoSummary -v q || exit 1; done

run: build-apps services
	@bash config/local/run.sh

# The conservation check (operator/Gateway.Operator/Verify/README.md) against what `make run` uses; the connection
# strings and key prefix can be overridden through the environment, as for the operator. Exit code 0 clean,
# 1 violations, 2 usage or configuration error, 3 PostgreSQL or Redis unreachable.
verify:
	@$(DOTNET) build operator/Gateway.Operator -c $(CONFIG) -nologo -clp:NoSummary -v q
	@ConnectionStrings__Postgres="$${ConnectionStrings__Postgres:-Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate}" \
	  ConnectionStrings__Redis="$${ConnectionStrings__Redis:-127.0.0.1:56379}" \
	  $(DOTNET) operator/Gateway.Operator/bin/$(CONFIG)/net10.0/Gateway.Operator.dll verify $(VERIFY_ARGS)

# Helm for the chart tests; when it cannot be installed the chart tests fail and say why.
test: services
	@bash config/local/tools.sh >/dev/null || echo "make test: Helm could not be installed into .tools/ (chart tests will fail)"
	@bash config/local/test.sh

test-stress: services
	@bash config/local/tools.sh >/dev/null || echo "make test-stress: Helm could not be installed into .tools/ (chart tests will fail)"
	@bash config/local/test-stress.sh

fuzz: services
	@bash config/local/fuzz.sh

chaos: services
	@bash config/local/chaos.sh

bench: services
	@bash config/local/bench.sh

bench-portal: services
	@bash config/local/bench-portal.sh

bench-operator: services
	@bash config/local/bench-operator.sh

crds:
	$(DOTNET) run --project operator/Gateway.Operator -- crds --out config/crd
	cp config/crd/tokengate.io_*.yaml charts/tokengate/crds/

tools:
	@bash config/local/tools.sh

# IMAGE_REGISTRY/IMAGE_TAG name the images as the chart expects: $(IMAGE_REGISTRY)/<component>:$(IMAGE_TAG).
images:
	@bash config/local/images.sh

clean:
	$(DOTNET) clean Gateway.sln -nologo -v q
