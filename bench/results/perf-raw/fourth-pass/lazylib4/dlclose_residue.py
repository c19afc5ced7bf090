import ctypes, _ctypes, os, sys, time
def rss():
    for l in open('/proc/self/smaps_rollup'):
        if l.startswith('Rss:'): return int(l.split()[1])
lib = sys.argv[1]
r0 = rss()
t = time.perf_counter()
h = ctypes.CDLL(lib, mode=os.RTLD_NOW | os.RTLD_LOCAL)
t1 = time.perf_counter() - t
r1 = rss()
_ctypes.dlclose(h._handle)
r2 = rss()
still = any(lib in l for l in open('/proc/self/maps'))
print(f"{lib}: RSS before {r0} kB, after dlopen +{r1-r0} kB ({t1*1000:.1f} ms), after dlclose +{r2-r0} kB; still mapped: {still}")
