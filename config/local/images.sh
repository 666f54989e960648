#!/usr/bin/env bash
# Builds the three images with the first builder that works here: docker, podman or buildah.
#   IMAGE_REGISTRY (default ghcr.io/tokengate)  IMAGE_TAG (default: the chart's appVersion)  BUILDER (force one)
# Names: $IMAGE_REGISTRY/{operator,proxy,portal}:$IMAGE_TAG, as charts/tokengate expects.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
registry="${IMAGE_REGISTRY:-ghcr.io/tokengate}"
tag="${IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/tokengate/Chart.yaml)}"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

usable() {
  case "$1" in
    docker) command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 ;;
    podman) command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1 ;;
    buildah) command -v buildah >/dev/null 2>&1 && buildah info >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}
builder="${BUILDER:-}"
if [ -z "$builder" ]; then
  for b in docker podman buildah; do if usable "$b"; then builder="$b"; break; fi; done
fi
if [ -z "$builder" ] || ! usable "$builder"; then
  echo "make images: no container builder available (tried ${BUILDER:-docker, podman, buildah}: not installed or its daemon/runtime does not answer)." >&2
  echo "Install one (e.g. apt-get install podman) or build on a machine that has one; the Dockerfiles are under operator/, proxy/ and portal/." >&2
  exit 1
fi

for spec in operator:operator/Gateway.Operator proxy:proxy/Gateway.Proxy portal:portal/Gateway.Portal; do
  name="${spec%%:*}"; dir="${spec#*:}"
  image="$registry/$name:$tag"
  echo "== $builder: $image"
  args=(-f "$dir/Dockerfile" -t "$image" --build-arg "VERSION=$tag" --build-arg "REVISION=$revision" .)
  case "$builder" in
    buildah) buildah bud --layers "${args[@]}" ;;
    *) "$builder" build "${args[@]}" ;;
  esac
done
echo "Built $registry/{operator,proxy,portal}:$tag with $builder."
