#include "bus/runtime/notify.hpp"

#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace bus::runtime {

notifier::notifier()
{
    if (const char* s = std::getenv("NOTIFY_SOCKET"); s && *s) socket_ = s;
    const char* usec = std::getenv("WATCHDOG_USEC");
    const char* pid = std::getenv("WATCHDOG_PID");
    if (usec && *usec && (!pid || !*pid || std::strtol(pid, nullptr, 10) == ::getpid())) {
        long long us = std::strtoll(usec, nullptr, 10);
        if (us > 0) watchdog_ = std::chrono::milliseconds(std::max<long long>(us / 2000, 1));
    }
}

notifier::notifier(std::string socket, std::optional<std::chrono::microseconds> watchdog) : socket_(std::move(socket))
{
    if (watchdog && watchdog->count() > 0)
        watchdog_ = std::chrono::milliseconds(std::max<long long>(watchdog->count() / 2000, 1));
}

bool notifier::send(std::string_view state) const
{
    if (socket_.empty()) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, socket_.data(), socket_.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
    if (socket_[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
    else if (socket_[0] != '/') return false;
    else ++len;
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    auto n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
    ::close(fd);
    return n == static_cast<ssize_t>(state.size());
}

bool notifier::ready(std::string_view status) const
{
    std::string s = "READY=1";
    if (!status.empty()) s += "\nSTATUS=" + std::string(status);
    return send(s);
}

bool notifier::status(std::string_view s) const { return send("STATUS=" + std::string(s)); }

} // namespace bus::runtime
