#!/usr/bin/env bash
# stomp-git's transports against real servers on loopback: a real sshd (own config, own host key,
# no systemd) serving a bare repository from a local account, and lighttpd running git
# http-backend over HTTPS with basic auth. The stomp-git worker (`stomp-git --worker REPO -c CFG`,
# run as root with a clean environment, dropping to the clone's owner) must fetch with the right
# known_hosts (plain, hashed, or the owner's ~/.ssh/known_hosts; the server offers two key types)
# and refuse a changed, unknown or revoked host key; HTTPS must work with the credentials file and fail clearly with a wrong token, which
# must appear in no output.
#   tests/integration/stomp_git_transport.sh STOMP_GIT
set -euo pipefail
sgit=$(realpath "$1")
[[ $(id -u) == 0 ]] || { echo "FAIL needs root (runs sshd, creates users, drops privileges)"; exit 1; }
for b in /usr/sbin/sshd /usr/sbin/lighttpd /usr/lib/git-core/git-http-backend; do
  [[ -x $b ]] || { echo "FAIL $b missing: run scripts/deps.sh"; exit 1; }
done
NAME=stomp_git_transport
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
chmod 755 "$work"
srv=dkgitsrv fetcher=dkgitfetch  # the ssh login account / the clone's owner
made_users=() made_run=
sshd_pid= httpd_pid=
cleanup() {
  { [[ -n $sshd_pid ]] && kill "$sshd_pid"; [[ -n $httpd_pid ]] && kill "$httpd_pid"; } 2>/dev/null || true
  { [[ -n $sshd_pid ]] && wait "$sshd_pid"; [[ -n $httpd_pid ]] && wait "$httpd_pid"; } 2>/dev/null || true
  for u in "${made_users[@]}"; do userdel "$u" 2>/dev/null || true; done
  [[ -z $made_run ]] || rmdir /run/sshd 2>/dev/null || true
}
on_exit cleanup

# Accounts: the server side logs in with a key (a shell is needed for git-upload-pack; '*' is "no
# password", not "locked", so sshd without PAM accepts it); the fetching side is a nologin user.
mkdir -p "$work/home/$srv" "$work/home/$fetcher"
if ! id "$srv" >/dev/null 2>&1; then
  useradd --system --home-dir "$work/home/$srv" --shell /bin/sh -p '*' "$srv"
  made_users+=("$srv")
fi
if ! id "$fetcher" >/dev/null 2>&1; then
  useradd --system --home-dir "$work/home/$fetcher" --shell /usr/sbin/nologin "$fetcher"
  made_users+=("$fetcher")
fi
usermod -p '*' -d "$work/home/$srv" "$srv" >/dev/null 2>&1 || true  # a leftover account: make it usable
usermod -d "$work/home/$fetcher" "$fetcher" >/dev/null 2>&1 || true
chown "$srv" "$work/home/$srv"
chown "$fetcher" "$work/home/$fetcher"

git_sandbox "$work"

# The central bare repository, owned by the server account, and two commits.
mkdir -p "$work/srv"
git init -q --bare "$work/srv/site.git"
git clone -q "$work/srv/site.git" "$work/dev" 2>/dev/null
commit() { (cd "$work/dev" && echo "$1" >index.html && git add . && git commit -qm "$1" && git push -q origin master 2>/dev/null); }
commit v1
chown -R "$srv" "$work/srv"

# --- sshd ------------------------------------------------------------------------------------------
sport=$(free_port)
mkdir -p "$work/sshd/keys"
[[ -d /run/sshd ]] || { mkdir /run/sshd; made_run=1; }
chmod 755 /run/sshd  # privilege separation directory (systemd's RuntimeDirectory normally)
ssh-keygen -q -t ed25519 -N '' -C '' -f "$work/sshd/host_ed25519"
ssh-keygen -q -t ecdsa -N '' -C '' -f "$work/sshd/host_ecdsa"  # libssh2 prefers ecdsa unless told otherwise
ssh-keygen -q -t ed25519 -N '' -C '' -f "$work/sshd/other_host_ed25519"  # "another machine's" key
ssh-keygen -q -t ed25519 -N '' -C '' -f "$work/client_key"                 # stomp-git's ssh-key (root 0600)
printf 'restrict %s\n' "$(cat "$work/client_key.pub")" >"$work/sshd/keys/$srv"
cat >"$work/sshd/sshd_config" <<EOF
Port $sport
ListenAddress 127.0.0.1
HostKey $work/sshd/host_ecdsa
HostKey $work/sshd/host_ed25519
PidFile $work/sshd/sshd.pid
AuthorizedKeysFile $work/sshd/keys/%u
AllowUsers $srv
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
StrictModes no
LogLevel VERBOSE
EOF
/usr/sbin/sshd -t -f "$work/sshd/sshd_config" || { echo "FAIL sshd_config rejected"; exit 1; }
/usr/sbin/sshd -D -e -f "$work/sshd/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
until_true 10 listening "$sport" || { echo "FAIL sshd did not listen: $(tail -5 "$work/sshd.log")"; exit 1; }

hostkey=$(cut -d' ' -f1,2 "$work/sshd/host_ed25519.pub")
otherkey=$(cut -d' ' -f1,2 "$work/sshd/other_host_ed25519.pub")
ecdsakey=$(cut -d' ' -f1,2 "$work/sshd/host_ecdsa.pub")
fp=$(ssh-keygen -lf "$work/sshd/host_ed25519.pub" -E sha256 | cut -d' ' -f2)
fp_ecdsa=$(ssh-keygen -lf "$work/sshd/host_ecdsa.pub" -E sha256 | cut -d' ' -f2)
name="[127.0.0.1]:$sport"
mkdir -p "$work/kh"
printf '# the real key\n%s %s\n' "$name" "$hostkey" >"$work/kh/good"  # ed25519 only: must be the type asked for
printf '%s %s\n' "$name" "$ecdsakey" >"$work/kh/ecdsa"
printf '%s %s\n' "$name" "$otherkey" >"$work/kh/changed"
printf 'git.example.com %s\n127.0.0.1 %s\n' "$hostkey" "$hostkey" >"$work/kh/unknown"  # port 22 only
cp "$work/kh/good" "$work/kh/hashed"
ssh-keygen -q -H -f "$work/kh/hashed" >/dev/null 2>&1
rm -f "$work/kh/hashed.old"
printf '%s %s\n@revoked * %s\n' "$name" "$hostkey" "$hostkey" >"$work/kh/revoked"

# The server's clone, owned by the nologin user, with an ssh origin.
git clone -q "$work/srv/site.git" "$work/clones/ssh" 2>/dev/null
git -C "$work/clones/ssh" remote set-url origin "ssh://$srv@127.0.0.1:$sport$work/srv/site.git"
chown -R "$fetcher" "$work/clones"
chmod 600 "$work/client_key"  # root's: the worker reads it before dropping to $fetcher

cfg() { # FILE EXTRA-KEYS: a worker config for the ssh clone
  printf 'rserver: stomp://127.0.0.1:1\nstate-dir: %s\nrepo-list:\n  site: {user: %s, repo: %s}\n%s' \
    "$work/state" "$fetcher" "$work/clones/ssh" "$2" >"$1"
}
worker() { # CONFIG OUT: run the worker as the daemon does (clean environment), keep stdout+stderr
  env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 timeout 60 "$sgit" --worker site -c "$1" >"$2" 2>&1 || true
}
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline()).get(sys.argv[2]))' "$@"; }
accepted() { grep -c "Accepted publickey for $srv" "$work/sshd.log" || true; }
head_rev() { git -C "$work/srv/site.git" rev-parse master; }

# (a) the right key in known-hosts: fetched (its type negotiated, though libssh2 prefers ecdsa).
commit v2
cfg "$work/a.yaml" "ssh-key: $work/client_key
known-hosts: $work/kh/good
"
worker "$work/a.yaml" "$work/a.out"
if [[ $(field "$work/a.out" ok) == True && $(field "$work/a.out" new_rev) == $(head_rev) ]]; then
  pass "ssh: known host -> fetched $(head_rev | cut -c1-12) (key read as root, fetch as $fetcher)"
else
  bad "ssh known host: $(cat "$work/a.out") $(tail -3 "$work/sshd.log")"
fi
[[ $(stat -c %U "$work/clones/ssh/.git/FETCH_HEAD") == "$fetcher" ]] && pass "ssh: fetched as the clone's owner" || bad "FETCH_HEAD owner $(stat -c %U "$work/clones/ssh/.git/FETCH_HEAD")"
cfg "$work/a2.yaml" "ssh-key: $work/client_key
known-hosts: $work/kh/ecdsa
"
worker "$work/a2.yaml" "$work/a2.out"
[[ $(field "$work/a2.out" ok) == True ]] && pass "ssh: a known_hosts with the other key type works too" || bad "ssh ecdsa: $(cat "$work/a2.out")"

# (b) another key for that host: refused before authenticating, with the fingerprint offered.
before=$(accepted)
commit v3
cfg "$work/b.yaml" "ssh-key: $work/client_key
known-hosts: $work/kh/changed
"
worker "$work/b.yaml" "$work/b.out"
err=$(field "$work/b.out" error)
if [[ $(field "$work/b.out" ok) == False && $err == *"REMOTE HOST IDENTIFICATION HAS CHANGED for $name"* &&
      $err == *"$fp"* && $err == *"$work/kh/changed:1"* && $err == *ssh-ed25519* ]]; then
  pass "ssh: changed host key refused: ${err:0:110}..."
else
  bad "ssh changed key: $(cat "$work/b.out")"
fi
[[ $(git -C "$work/clones/ssh" rev-parse origin/master) != $(head_rev) ]] && pass "ssh: nothing fetched from the impostor" || bad "fetched despite a changed key"
[[ $(accepted) == "$before" ]] && pass "ssh: no authentication attempted with a changed key" || bad "authenticated to a host with a changed key"

# (c) host not in known_hosts (only on port 22, and other names): refused, never trusted on first use.
cfg "$work/c.yaml" "ssh-key: $work/client_key
known-hosts: $work/kh/unknown
"
worker "$work/c.yaml" "$work/c.out"
err=$(field "$work/c.out" error)
[[ $(field "$work/c.out" ok) == False && $err == *"$name is not in $work/kh/unknown"* && $err == *"never trusts a host on first use"* &&
   ($err == *"$fp"* || $err == *"$fp_ecdsa"*) ]] &&
  pass "ssh: unknown host refused: ${err:0:110}..." || bad "ssh unknown host: $(cat "$work/c.out")"
grep -q "$name" "$work/kh/unknown" && bad "the worker wrote to known_hosts" || pass "ssh: known_hosts left untouched (no trust on first use)"

# (c') no known-hosts configured: ~$fetcher/.ssh/known_hosts, refused while it is missing.
cfg "$work/d.yaml" "ssh-key: $work/client_key
"
worker "$work/d.yaml" "$work/d1.out"
err=$(field "$work/d1.out" error)
[[ $(field "$work/d1.out" ok) == False && $err == *"no known-hosts is configured and $work/home/$fetcher/.ssh/known_hosts (user $fetcher) cannot be read"* ]] &&
  pass "ssh: default known_hosts missing -> refused: ${err:0:100}..." || bad "ssh default missing: $(cat "$work/d1.out")"
mkdir -p "$work/home/$fetcher/.ssh"
cp "$work/kh/good" "$work/home/$fetcher/.ssh/known_hosts"
chown -R "$fetcher" "$work/home/$fetcher/.ssh"
worker "$work/d.yaml" "$work/d2.out"
[[ $(field "$work/d2.out" ok) == True && $(field "$work/d2.out" new_rev) == $(head_rev) ]] &&
  pass "ssh: the owner's ~/.ssh/known_hosts is used by default" || bad "ssh default known_hosts: $(cat "$work/d2.out")"

# The owner's own ~/.ssh/known_hosts, which libgit2 1.5.1 reads by itself, cannot break a fetch
# checked against the configured file (libssh2 cannot parse markers or garbage).
printf '@cert-authority *.example.com %s\nnot a known_hosts line\n%s %s\n' "$hostkey" "$name" "$otherkey" >"$work/home/$fetcher/.ssh/known_hosts"
worker "$work/a.yaml" "$work/u.out"
[[ $(field "$work/u.out" ok) == True ]] && pass "ssh: the owner's unparsable ~/.ssh/known_hosts does not interfere" || bad "ssh home interference: $(cat "$work/u.out")"

# (d) a hashed entry (ssh-keygen -H).
commit v4
grep -q "127.0.0.1" "$work/kh/hashed" && bad "known_hosts not hashed" || true
cfg "$work/h.yaml" "ssh-key: $work/client_key
known-hosts: $work/kh/hashed
"
worker "$work/h.yaml" "$work/h.out"
[[ $(field "$work/h.out" ok) == True && $(field "$work/h.out" new_rev) == $(head_rev) ]] &&
  pass "ssh: hashed known_hosts entry accepted" || bad "ssh hashed: $(cat "$work/h.out")"

# @revoked: refused even though a plain line has the key.
cfg "$work/r.yaml" "ssh-key: $work/client_key
known-hosts: $work/kh/revoked
"
worker "$work/r.yaml" "$work/r.out"
[[ $(field "$work/r.out" ok) == False && $(field "$work/r.out" error) == *"marks @revoked"* ]] &&
  pass "ssh: @revoked key refused" || bad "ssh revoked: $(cat "$work/r.out")"

# A private key others can read is refused, as OpenSSH refuses it.
cp "$work/client_key" "$work/open_key"
chmod 644 "$work/open_key"
cfg "$work/k.yaml" "ssh-key: $work/open_key
known-hosts: $work/kh/good
"
worker "$work/k.yaml" "$work/k.out"
[[ $(field "$work/k.out" ok) == False && $(field "$work/k.out" error) == *"open_key is accessible to group or others (mode 0644)"* ]] &&
  pass "ssh: a group/world-readable ssh-key is refused" || bad "open key: $(cat "$work/k.out")"

# --- HTTPS: lighttpd + git http-backend, basic auth, a private CA ---------------------------------
hport=$(free_port)
mkdir -p "$work/tls" "$work/www" "$work/httpd"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=deploykit test CA" \
  -keyout "$work/tls/ca.key" -out "$work/tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$work/tls/server.key" -out "$work/tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n' >"$work/tls/ext"
openssl x509 -req -in "$work/tls/server.csr" -CA "$work/tls/ca.pem" -CAkey "$work/tls/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/tls/ext" -out "$work/tls/server.pem" 2>/dev/null
token=tok-$(openssl rand -hex 12)
wrong=wrong-$(openssl rand -hex 12)
printf 'alice:%s\n' "$token" >"$work/www/users"
chown -R "$srv" "$work/www" "$work/tls" "$work/httpd"
cat >"$work/lighttpd.conf" <<EOF
server.modules = ("mod_access", "mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi", "mod_openssl")
server.document-root = "$work/www"
server.bind = "127.0.0.1"
server.port = $hport
server.username = "$srv"
server.pid-file = "$work/httpd/lighttpd.pid"
server.errorlog = "$work/httpd/error.log"
ssl.engine = "enable"
ssl.pemfile = "$work/tls/server.pem"
ssl.privkey = "$work/tls/server.key"
auth.backend = "plain"
auth.backend.plain.userfile = "$work/www/users"
alias.url = ("/git" => "/usr/lib/git-core/git-http-backend")
\$HTTP["url"] =~ "^/git" {
  cgi.assign = ("" => "")
  setenv.add-environment = ("GIT_PROJECT_ROOT" => "$work/srv", "GIT_HTTP_EXPORT_ALL" => "")
  auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
}
EOF
/usr/sbin/lighttpd -tt -f "$work/lighttpd.conf" >/dev/null || { echo "FAIL lighttpd.conf rejected"; exit 1; }
/usr/sbin/lighttpd -D -f "$work/lighttpd.conf" 2>"$work/lighttpd.log" &
httpd_pid=$!
until_true 10 listening "$hport" || { echo "FAIL lighttpd did not listen: $(cat "$work/lighttpd.log" "$work/httpd/error.log" 2>/dev/null | tail -5)"; exit 1; }

git clone -q "$work/srv/site.git" "$work/clones/https" 2>/dev/null
git -C "$work/clones/https" remote set-url origin "https://127.0.0.1:$hport/git/site.git"
chown -R "$fetcher" "$work/clones/https"
printf '# stomp-git https credentials\nhttps://alice:%s@127.0.0.1:%s\n' "$token" "$hport" >"$work/creds-good"
printf 'alice:%s\n' "$wrong" >"$work/creds-wrong"
chmod 600 "$work/creds-good" "$work/creds-wrong"
hcfg() { # FILE CREDENTIALS-FILE [CA]
  printf 'rserver: stomp://127.0.0.1:1\nstate-dir: %s\ncredentials-file: %s\n%srepo-list:\n  site: {user: %s, repo: %s}\n' \
    "$work/state" "$2" "${3:+https-ca-file: $3
}" "$fetcher" "$work/clones/https" >"$1"
}

# (e) the right token: fetched.
commit v5
hcfg "$work/e.yaml" "$work/creds-good" "$work/tls/ca.pem"
worker "$work/e.yaml" "$work/e.out"
[[ $(field "$work/e.out" ok) == True && $(field "$work/e.out" new_rev) == $(head_rev) ]] &&
  pass "https: per-host credentials -> fetched $(head_rev | cut -c1-12)" || bad "https good: $(cat "$work/e.out") $(tail -3 "$work/httpd/error.log" 2>/dev/null)"

# (f) a wrong token: a clear authentication error, and the token nowhere.
commit v6
hcfg "$work/f.yaml" "$work/creds-wrong" "$work/tls/ca.pem"
worker "$work/f.yaml" "$work/f.out"
err=$(field "$work/f.out" error)
[[ $(field "$work/f.out" ok) == False && $err == *"authentication failed"* && $err == *"refused user 'alice'"* && $err == *"$work/creds-wrong"* ]] &&
  pass "https: wrong token refused: $err" || bad "https wrong token: $(cat "$work/f.out")"
grep -q -- "$wrong" "$work/f.out" && bad "the wrong token appears in the worker's output" || pass "https: the token appears in no output"

# A token in the clone's origin URL never shows in errors either.
git -C "$work/clones/https" remote set-url origin "https://alice:$wrong@127.0.0.1:$hport/git/site.git"
worker "$work/f.yaml" "$work/g.out"
[[ $(field "$work/g.out" ok) == False ]] && ! grep -q -- "$wrong" "$work/g.out" && grep -q "https://127.0.0.1:$hport/git/site.git" "$work/g.out" &&
  pass "https: userinfo stripped from the URL in the error" || bad "url userinfo: $(cat "$work/g.out")"
git -C "$work/clones/https" remote set-url origin "https://127.0.0.1:$hport/git/site.git"

# Without https-ca-file the private CA is not trusted, and the error says what to set.
hcfg "$work/n.yaml" "$work/creds-good"
worker "$work/n.yaml" "$work/n.out"
[[ $(field "$work/n.out" ok) == False && $(field "$work/n.out" error) == *"set https-ca-file"* ]] &&
  pass "https: untrusted certificate refused, https-ca-file suggested" || bad "https untrusted: $(cat "$work/n.out")"

# A credentials file others can read, or owned by someone else, is refused.
cp "$work/creds-good" "$work/creds-open"
chmod 644 "$work/creds-open"
hcfg "$work/o.yaml" "$work/creds-open" "$work/tls/ca.pem"
worker "$work/o.yaml" "$work/o.out"
[[ $(field "$work/o.out" ok) == False && $(field "$work/o.out" error) == *"creds-open is accessible to group or others (mode 0644)"* ]] &&
  ! grep -q -- "$token" "$work/o.out" && pass "https: a 0644 credentials-file is refused" || bad "open creds: $(cat "$work/o.out")"
cp "$work/creds-good" "$work/creds-theirs"
chmod 600 "$work/creds-theirs"
chown "$fetcher" "$work/creds-theirs"
hcfg "$work/t.yaml" "$work/creds-theirs" "$work/tls/ca.pem"
worker "$work/t.yaml" "$work/t.out"
[[ $(field "$work/t.out" ok) == False && $(field "$work/t.out" error) == *"must belong to root or the user stomp-git runs as"* ]] &&
  pass "https: a credentials-file owned by another user is refused" || bad "creds owner: $(cat "$work/t.out")"

echo "$( [[ $fail == 0 ]] && echo ok || echo failures ): see above"
exit $fail
