#!/usr/bin/env bash
# HTTP/2 when the server offers it: nginx over TLS (a throwaway self-signed certificate,
# trusted through the provider's ca_file) must see concurrent requests multiplexed on one
# connection, and every answer parsed.
source "$(dirname "$0")/lib.sh"
cd "$SCRATCH"
if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null; then
  echo "SKIP: nginx or openssl not installed (make deps installs them)"
  echo "0 passed, 0 failed"
  exit 0
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout key.pem -out cert.pem 2>/dev/null

answer='{"id":"c1","object":"chat.completion","model":"h2","choices":[{"index":0,"message":{"role":"assistant","content":"over h2"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
start_nginx() {
  local port=$1
  mkdir -p nginx
  cat >nginx/nginx.conf <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $SCRATCH/nginx/nginx.pid;
error_log $SCRATCH/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $SCRATCH/nginx/body;
  proxy_temp_path $SCRATCH/nginx/proxy;
  fastcgi_temp_path $SCRATCH/nginx/fastcgi;
  uwsgi_temp_path $SCRATCH/nginx/uwsgi;
  scgi_temp_path $SCRATCH/nginx/scgi;
  # The TLS front reads each request body whole (proxying buffers it) before answering,
  # as an LLM server does; nginx's bare 'return' would answer first and reset the upload.
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $SCRATCH/cert.pem;
    ssl_certificate_key $SCRATCH/key.pem;
    location / { proxy_pass http://127.0.0.1:$((port + 1)); }
  }
  server {
    listen 127.0.0.1:$((port + 1));
    location /v1/chat/completions { default_type application/json; return 200 '$answer'; }
  }
}
CONF
  nginx -c "$SCRATCH/nginx/nginx.conf" -e "$SCRATCH/nginx/error.log" &
  MOCK_PIDS+=($!)
}
for try in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000 * 2))
  start_nginx "$port"
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.05
  done
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
done

cat >h2.cfg.lua <<LUA
return { providers = { tls = { kind = "openai", base_url = "https://127.0.0.1:$port/v1",
                               ca_file = "$SCRATCH/cert.pem" } } }
LUA
cat >h2.lua <<'LUA'
local items = {}
for i = 1, 200 do items[i] = i end
local out = task.map(items, function(i) return llm.chat{ prompt = "h2 " .. i }.text end, { limit = 50 })
local s = llm.stats()
print(("answers=%d http2=%d connections=%d peak=%d"):format(#out, s.http2_responses,
  s.connections_opened, s.in_flight_peak))
assert(#out == 200 and out[200] == "over h2", "every answer parsed")
assert(s.http2_responses == 200, "all over HTTP/2")
assert(s.connections_opened <= 2, "multiplexed, not one connection per request")
LUA
if timeout 60 "$MOONLOOP" run --config h2.cfg.lua h2.lua >h2.out 2>&1; then
  pass "HTTP/2 multiplexing over TLS: $(tail -1 h2.out)"
else
  fail "HTTP/2 multiplexing" "$(cat h2.out)"
fi

cat >untrusted.cfg.lua <<LUA
return { providers = { tls = { kind = "openai", base_url = "https://127.0.0.1:$port/v1" } } }
LUA
printf 'local ok, err = pcall(llm.chat, { prompt = "x" })\nassert(not ok and err.kind == "transport")\nprint(tostring(err))\n' >untrusted.lua
if timeout 30 "$MOONLOOP" run --config untrusted.cfg.lua untrusted.lua >untrusted.out 2>&1 &&
   grep -qi "certificate" untrusted.out; then
  pass "an untrusted certificate is a transport error that says so"
else
  fail "untrusted certificate" "$(cat untrusted.out)"
fi
finish
