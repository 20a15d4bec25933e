# shellcheck shell=bash
# Shared functions of the evflex anvil scripts (scripts/anvil-state, scripts/check-anvil-state,
# scripts/dev-chain, scripts/gas-figure). Source it after cd-ing to the repository root.

EVFLEX_ROOT=$PWD
EVFLEX_ANVIL_DIR=$EVFLEX_ROOT/anvil

# foundry_binary TOOL: the path of forge, cast or anvil as installed by `npm ci`.
#
# The npm launchers node_modules/.bin/{forge,cast,anvil} of @foundry-rs 1.7.1 always exit 0, whatever the
# tool's exit status (they never forward it), so a script could not notice a failed deployment or an
# unreachable node through them. Use the native binary the launcher would run: the platform package's
# bin/TOOL, resolved the way the launcher resolves it; fall back to the launcher if it is missing.
foundry_binary() {
  local tool=$1 native
  native=$(node -e 'try { console.log(require.resolve(`@foundry-rs/${process.argv[1]}-${process.argv[2]}/bin/${process.argv[1]}`,
      { paths: [process.argv[3]] })); } catch { }' "$tool" "$(node -p 'process.platform + "-" + ({x64: "amd64"}[process.arch] || process.arch)')" "$EVFLEX_ROOT")
  if [[ -n $native && -x $native ]]; then
    echo "$native"
  elif [[ -x $EVFLEX_ROOT/node_modules/.bin/$tool ]]; then
    echo "$EVFLEX_ROOT/node_modules/.bin/$tool"
  else
    echo "error: $tool not found under node_modules: run 'npm ci' at the repository root first" >&2
    return 1
  fi
}

FORGE=$(foundry_binary forge)
CAST=$(foundry_binary cast)
ANVIL=$(foundry_binary anvil)

# evflex_setting KEY: a value of anvil/anvil.json.
evflex_setting() {
  node -e 'const s = require(process.argv[1]); const v = s[process.argv[2]];
    if (v === undefined) { console.error(`anvil.json has no ${process.argv[2]}`); process.exit(1); }
    console.log(v);' "$EVFLEX_ANVIL_DIR/anvil.json" "$1"
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
  node -e 'const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# anvil_args: the project's anvil settings as arguments, into the array EVFLEX_ANVIL_ARGS.
anvil_args() {
  EVFLEX_ANVIL_ARGS=(
    --chain-id "$(evflex_setting chainId)"
    --mnemonic "$(evflex_setting mnemonic)"
    --accounts "$(evflex_setting accounts)"
    --balance "$(evflex_setting balanceEth)"
    --hardfork "$(evflex_setting hardfork)"
  )
}

# wait_for_rpc URL PID: wait until anvil answers at URL, or fail if process PID died.
wait_for_rpc() {
  local url=$1 pid=$2 i
  for ((i = 0; i < 100; i++)); do
    if "$CAST" chain-id --rpc-url "$url" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: anvil exited before answering at $url" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "error: anvil did not answer at $url within 10 s" >&2
  return 1
}

# stop_anvil PID: stop anvil cleanly (SIGINT, so --dump-state is written) and wait for it.
stop_anvil() {
  local pid=$1 i
  kill -INT "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# source_hash: sha256 of what the anvil state is built from: contracts/src/**, contracts/script/**,
# contracts/foundry.toml, anvil/anvil.json and the package-lock versions of solc, OpenZeppelin, forge-std and
# Foundry.
source_hash() {
  node - "$EVFLEX_ROOT" <<'JS'
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const root = process.argv[2];
function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}
const files = [
  ...walk(path.join(root, 'contracts/src')),
  ...walk(path.join(root, 'contracts/script')),
  path.join(root, 'contracts/foundry.toml'),
  path.join(root, 'anvil/anvil.json'),
].map((f) => path.relative(root, f).split(path.sep).join('/')).sort();
const hash = crypto.createHash('sha256');
for (const f of files) {
  const digest = crypto.createHash('sha256').update(fs.readFileSync(path.join(root, f))).digest('hex');
  hash.update(`${f}\0${digest}\n`);
}
const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
for (const pkg of ['solc', '@openzeppelin/contracts', '@layerzerolabs/toolbox-foundry',
                   '@foundry-rs/forge', '@foundry-rs/anvil']) {
  const entry = (lock.packages || {})[`node_modules/${pkg}`];
  hash.update(`${pkg}@${entry ? entry.version : 'missing'}\n`);
}
console.log(hash.digest('hex'));
JS
}
