#!/usr/bin/env bash
# run under the lock: compile spdlog_fmt.o, link variants
set -euo pipefail
B=/work/wt/perf/build; S=/work/wt/perf; O=/tmp/p18; L=/usr/lib/x86_64-linux-gnu
cd $B
DEFS="-DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB"
/usr/bin/c++ $DEFS -O2 -g -DNDEBUG -Wall -Wextra -std=c++20 -c $S/libbus/src/link/spdlog_fmt.cpp -o $O/spdlog_fmt.o
OBJS="hooks/post-receive/CMakeFiles/stomp-post-receive.dir/main.cpp.o hooks/post-receive/CMakeFiles/stomp-post-receive.dir/shell.cpp.o"
LIBS="hooks/post-receive/libpost_receive_lib.a libbus/libbus_hook.a libbus/libbus_spawn.a libbus/libbus_runtime.a libbus/libbus_http.a libbus/libbus_config.a libbus/libbus_runtime_config.a libbus/libbus.a libbus/libbus_asio.a libbus/libbus_events.a libbus/libbus_stomp.a"
# V0 current
cp hooks/post-receive/stomp-post-receive $O/v0
# V1 static C++ runtime, spdlog/fmt/yaml-cpp in
/usr/bin/c++ -O2 -g -Wl,-z,relro -Wl,-z,now -static-libstdc++ -static-libgcc -Wl,--as-needed $OBJS $O/spdlog_fmt.o -o $O/v1 $LIBS $L/libyaml-cpp.a $L/libz.so $L/libssl.so $L/libcrypto.so
# V2 + static z, ssl, crypto
/usr/bin/c++ -O2 -g -Wl,-z,relro -Wl,-z,now -static-libstdc++ -static-libgcc -Wl,--as-needed $OBJS $O/spdlog_fmt.o -o $O/v2 $LIBS $L/libyaml-cpp.a $L/libz.a $L/libssl.a $L/libcrypto.a
# V3 + -O1, gnu hash, packed relative relocations
/usr/bin/c++ -O2 -g -Wl,-O1 -Wl,--hash-style=gnu -Wl,-z,pack-relative-relocs -Wl,-z,relro -Wl,-z,now -static-libstdc++ -static-libgcc -Wl,--as-needed $OBJS $O/spdlog_fmt.o -o $O/v3 $LIBS $L/libyaml-cpp.a $L/libz.a $L/libssl.a $L/libcrypto.a
# V4 = V3 lazy binding
/usr/bin/c++ -O2 -g -Wl,-O1 -Wl,--hash-style=gnu -Wl,-z,pack-relative-relocs -Wl,-z,relro -Wl,-z,lazy -static-libstdc++ -static-libgcc -Wl,--as-needed $OBJS $O/spdlog_fmt.o -o $O/v4 $LIBS $L/libyaml-cpp.a $L/libz.a $L/libssl.a $L/libcrypto.a
# V5 = V1 + packed relocs (ssl/crypto shared)
/usr/bin/c++ -O2 -g -Wl,-O1 -Wl,--hash-style=gnu -Wl,-z,pack-relative-relocs -Wl,-z,relro -Wl,-z,now -static-libstdc++ -static-libgcc -Wl,--as-needed $OBJS $O/spdlog_fmt.o -o $O/v5 $LIBS $L/libyaml-cpp.a $L/libz.a $L/libssl.so $L/libcrypto.so
for v in v0 v1 v2 v3 v4 v5; do echo "$v: $(stat -c %s $O/$v) B; $(ldd $O/$v | awk '{print $1}' | tr '\n' ' ')"; done
