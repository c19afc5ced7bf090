#!/usr/bin/env python3
"""Where each daemon's idle RSS goes, from bench/idle_rss.sh's smaps-DAEMON.txt lists (OUT_DIR):
summarise.py DIR  ->  per daemon, kB of RSS / private dirty / PSS by group of mappings."""
import sys, os, re, collections
GROUPS = [
    ("own executable: text (r-xp)", lambda m, p, d: m.startswith("/tmp/") or "/daemons/" in m, "r-xp"),
    ("own executable: rodata, eh_frame (r--p)", lambda m, p, d: m.startswith("/tmp/") or "/daemons/" in m, "r--p"),
    ("own executable: data, bss (rw-p)", lambda m, p, d: m.startswith("/tmp/") or "/daemons/" in m, "rw-p"),
]
LIB = [
    ("libcrypto + libssl", r"lib(crypto|ssl)\.so"),
    ("libc, libm, ld.so", r"/(libc|libm|ld-linux-x86-64)\.so"),
    ("libgit2, libssh2, mbedTLS, Kerberos/GSSAPI, pcre2, http_parser, zlib (libgit2's, or libcurl's in herald and stomp-jenkins)",
     r"lib(git2|ssh2|mbed|krb5|gssapi|k5crypto|com_err|keyutils|resolv|pcre2|http_parser|z\.so)"),
    ("libcurl and its libraries (gnutls, p11-kit, nettle, gmp, ldap, idn2, ...)",
     r"lib(curl|gnutls|p11-kit|nettle|hogweed|gmp|ldap|lber|sasl|idn2|unistring|tasn1|ffi|rtmp|psl|nghttp2|brotli|zstd)"),
    ("libsqlite3", r"libsqlite3"),
    ("libstdc++, libgcc_s, libapt-pkg and its libraries", r"lib(stdc\+\+|gcc_s|apt-pkg|lz4|lzma|bz2|xxhash|systemd|udev|gcrypt|gpg-error|cap)"),
    ("heap, thread stacks and arenas (anonymous)", r"^\[(anon|heap|stack)"),
]
def group(name, perms):
    if name.startswith("/tmp/") or "/daemons/" in name:
        return {"r-xp": GROUPS[0][0], "r--p": GROUPS[1][0]}.get(perms, GROUPS[2][0])
    for g, rx in LIB:
        if re.search(rx, name): return g
    return "other (vdso, yaml, other libraries)"
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    if not f.startswith("smaps-"): continue
    agg = collections.defaultdict(lambda: [0, 0, 0])
    tot = [0, 0, 0]
    for line in open(os.path.join(d, f)).read().splitlines():
        if not line[:1].isdigit(): continue
        rss, pc, pd, pss, name, perms = line.split()
        g = group(name, perms)
        for i, v in enumerate((int(rss), int(pd), int(pss))):
            agg[g][i] += v; tot[i] += v
    print(f"\n{f[6:-4]}: RSS {tot[0]} kB, private dirty {tot[1]} kB, PSS {tot[2]} kB")
    print("| mappings | RSS kB | private dirty kB | PSS kB |\n|---|---:|---:|---:|")
    for g, (r, p, s) in sorted(agg.items(), key=lambda x: -x[1][0]):
        print(f"| {g} | {r} | {p} | {s} |")
