import ctypes, _ctypes, os, sys
def maps(): return set(l.split()[-1] for l in open('/proc/self/maps') if '.so' in l)
m0=maps(); h=ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW|os.RTLD_LOCAL); m1=maps(); _ctypes.dlclose(h._handle); m2=maps()
print(sys.argv[1], "loaded:", len(m1-m0), "still mapped after dlclose:", sorted(os.path.basename(x) for x in (m2-m0)))
