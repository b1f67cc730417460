#!/usr/bin/env bash
# Open WebUI against `chimera serve`, as a user meets it: installs Open WebUI into a throwaway
# venv outside the repository (large: torch and the rest, several GB; not run in CI), starts
# chimera and Open WebUI (no login, offline, RAG embeddings through chimera's /api/embed), then
# through Open WebUI's own HTTP API: signs in, lists the models, creates a chat and streams one
# default answer in it (a browser session: Open WebUI adds its built-in tools), uploads a document for RAG
# and asks about it. Prints each step; with SHOT=1 and Debian's `chromium` on the path, a
# headless screenshot of the chat lands in $OUT/chat.png.
#
# A base model never stops on its own, and Open WebUI's background tasks (title, tags, follow-ups,
# the RAG search query) set no length but the title's 1000: unbounded, a task runs to Ollama's cap
# of 10 × num_ctx tokens and the RAG answer waits minutes for its query. TASK_MODEL_PARAMS bounds
# them (OWU_TASK_PARAMS; '{}' for Open WebUI's defaults).
#
# usage: scripts/open-webui-check.sh [MODEL (default gemma3:270m)]
# env:   OPEN_WEBUI=0.12.4  OWU_HOME=~/.cache/chimera-openwebui  OUT=<folder for logs>  SHOT=0|1
#        OWU_TASK_PARAMS='{"max_tokens": 64}'
set -euo pipefail
MODEL=${1:-gemma3:270m}
root=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${OPEN_WEBUI:-0.12.4}
OWU_HOME=${OWU_HOME:-$HOME/.cache/chimera-openwebui}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OWU_HOME" "$OUT"
if [ ! -x "$OWU_HOME/venv/bin/open-webui" ]; then
  echo "installing open-webui $VERSION into $OWU_HOME/venv (several GB)" >&2
  python3 -m venv "$OWU_HOME/venv"
  "$OWU_HOME/venv/bin/pip" install -q "open-webui==$VERSION"
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
chimera="$root/target/release/chimera"
"$chimera" pull "$MODEL" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cport=$(free_port)
wport=$(free_port)
"$chimera" serve --port "$cport" --parallel 2 2>"$OUT/chimera.log" &
cpid=$!
data=$(mktemp -d)
trap 'kill $cpid ${wpid:-} 2>/dev/null || true; rm -rf "$data"' EXIT
cd "$data" # Open WebUI writes .webui_secret_key into its working folder
# Open WebUI offline, without login, its RAG embeddings from chimera (no sentence-transformers
# download), its Ollama connection pointed at chimera
env DATA_DIR="$data" WEBUI_AUTH=False OFFLINE_MODE=true HF_HUB_OFFLINE=1 ENABLE_OPENAI_API=False \
  OLLAMA_BASE_URL="http://127.0.0.1:$cport" RAG_EMBEDDING_ENGINE=ollama RAG_EMBEDDING_MODEL="$MODEL" \
  RAG_OLLAMA_BASE_URL="http://127.0.0.1:$cport" ENABLE_VERSION_UPDATE_CHECK=False \
  TASK_MODEL_PARAMS="${OWU_TASK_PARAMS:-{\"max_tokens\": 64\}}" \
  "$OWU_HOME/venv/bin/open-webui" serve --host 127.0.0.1 --port "$wport" >"$OUT/open-webui.log" 2>&1 &
wpid=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$wport/health" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$wport/health" >/dev/null || { tail -30 "$OUT/open-webui.log"; exit 1; }
python3 - "http://127.0.0.1:$wport" "$MODEL" "$OUT" <<'PY'
import json, sys, time, urllib.request, uuid
base, model, out = sys.argv[1], sys.argv[2], sys.argv[3]
token = None

def call(method, path, body=None, raw=None, ctype="application/json", stream=False):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    r = urllib.request.urlopen(req, timeout=600)
    return r if stream else json.load(r)

token = call("POST", "/api/v1/auths/signin", {"email": "", "password": ""})["token"]
# the release notes were seen (else they cover the screenshot)
call("POST", "/api/v1/users/user/settings/update", {"ui": {"version": call("GET", "/api/config")["version"]}})
models = [m["id"] for m in call("GET", "/api/models")["data"]]
print("models Open WebUI lists:", models)
assert model in models, models

def chat(question, files=None):
    """One chat as the browser sends it (a session, so Open WebUI adds its built-in tools); the
    answer is read back from the saved chat once it is done."""
    msg_id = str(uuid.uuid4())
    c = call("POST", "/api/v1/chats/new", {"chat": {"title": "check", "models": [model], "messages": [], "history": {"messages": {}, "currentId": None}}})
    body = {"model": model, "stream": True, "chat_id": c["id"], "id": msg_id, "session_id": "check",
            "messages": [{"role": "user", "content": question}], "params": {"num_predict": 48}}
    if files:
        body["files"] = files
    t0 = time.time()
    call("POST", "/api/chat/completions", body)
    m = {}
    for _ in range(600):
        m = call("GET", f"/api/v1/chats/{c['id']}")["chat"].get("history", {}).get("messages", {}).get(msg_id) or {}
        if m.get("done"):
            break
        time.sleep(0.5)
    if m.get("error"):
        raise SystemExit(f"Open WebUI shows an error as the answer: {m['error']}")
    return c["id"], time.time() - t0, m.get("content", ""), (m.get("usage") or {}).get("prompt_tokens")

cid, total, text, prompt = chat("Why is the sky blue?")
print(f"default chat (built-in tools on): answered in {total:.1f} s, prompt {prompt} tokens")
print("answer:", repr(text[:300]))
assert text.strip(), "the chat answered"
open(out + "/chat_id", "w").write(cid)

doc = b"The Zorblax 9000 is a blue teapot that holds exactly 7 litres and was made in Oslo in 1998.\n" * 3
boundary = uuid.uuid4().hex
form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"zorblax.txt\"\r\n"
        f"Content-Type: text/plain\r\n\r\n").encode() + doc + f"\r\n--{boundary}--\r\n".encode()
f = call("POST", "/api/v1/files/?process=true", raw=form, ctype=f"multipart/form-data; boundary={boundary}")
for _ in range(120):
    st = call("GET", f"/api/v1/files/{f['id']}/process/status")
    if st.get("status") in ("completed", "failed"):
        break
    time.sleep(1)
print("RAG upload:", f["filename"], "processing", st.get("status"), st.get("error", ""))
assert st.get("status") == "completed", st
_, total, text, prompt = chat("How many litres does the Zorblax 9000 hold?", files=[{"type": "file", "id": f["id"]}])
print(f"RAG chat: answered in {total:.1f} s, prompt {prompt} tokens")
print("answer:", repr(text[:300]))
assert text.strip(), "the RAG chat answered"
PY
echo "chimera's log of the calls Open WebUI made:"
grep -E " (POST|GET|HEAD) " "$OUT/chimera.log" | awk '{print $3, $4, $5}' | sort | uniq -c | sort -rn | head -20
if [ "${SHOT:-0}" = 1 ] && command -v chromium >/dev/null; then
  chromium --headless --no-sandbox --disable-gpu --window-size=1280,900 --virtual-time-budget=30000 \
    --screenshot="$OUT/chat.png" "http://127.0.0.1:$wport/c/$(cat "$OUT/chat_id")" 2>/dev/null
  echo "screenshot: $OUT/chat.png"
fi
echo "logs: $OUT"
