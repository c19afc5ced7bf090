#include "bus/lazy_library.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace bus {

lazy_library::lazy_library(const char* soname, std::span<const char* const> symbols) : soname_(soname), names_(symbols) {}

std::string lazy_library::open_and_resolve(void*& handle, std::vector<void*>& table) const
{
    // RTLD_NOW: a missing symbol of the library's own dependencies fails here, not at a call;
    // RTLD_LOCAL: its symbols do not become visible to libraries loaded later.
    handle = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* e = ::dlerror();
        return std::string("cannot load ") + soname_ + ": " + (e ? e : "dlopen failed");
    }
    table.assign(names_.size(), nullptr);
    for (std::size_t i = 0; i < names_.size(); ++i) {
        ::dlerror();
        table[i] = ::dlsym(handle, names_[i]);
        if (!table[i]) {
            const char* e = ::dlerror();
            std::string why = std::string("cannot load ") + soname_ + ": symbol " + names_[i] + " not found" +
                              (e ? std::string(" (") + e + ")" : std::string());
            ::dlclose(handle);
            handle = nullptr;
            return why;
        }
    }
    return {};
}

std::string lazy_library::load()
{
    std::lock_guard lock(mu_);
    if (loaded_.load(std::memory_order_relaxed)) return {};
    void* handle = nullptr;
    std::vector<void*> table;
    if (auto e = open_and_resolve(handle, table); !e.empty()) return e;
    table_ = std::move(table);  // the handle stays open for the life of the process
    loaded_.store(true, std::memory_order_release);
    return {};
}

std::string lazy_library::probe(std::chrono::milliseconds deadline) const
{
    if (loaded()) return {};
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("cannot check ") + soname_ + ": pipe: " + std::strerror(errno);
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        return std::string("cannot check ") + soname_ + ": fork: " + std::strerror(err);
    }
    if (pid == 0) {  // the child: load, report, exit without running the parent's atexit handlers
        ::close(fds[0]);
        void* handle = nullptr;
        std::vector<void*> table;
        std::string e = open_and_resolve(handle, table);
        if (!e.empty()) {
            const char* p = e.data();
            std::size_t left = e.size();
            while (left > 0) {
                ssize_t n = ::write(fds[1], p, left);
                if (n <= 0) break;
                p += n;
                left -= static_cast<std::size_t>(n);
            }
        }
        ::_exit(e.empty() ? 0 : 1);
    }
    ::close(fds[1]);
    std::string out;
    auto until = std::chrono::steady_clock::now() + deadline;
    bool timed_out = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[512];
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EOF: the child has exited (or closed the pipe)
        if (out.size() < 4096) out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    if (timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (timed_out) return std::string("cannot check ") + soname_ + ": loading it took longer than " +
                          std::to_string(deadline.count()) + " ms";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    if (!out.empty()) return out;
    return std::string("cannot check ") + soname_ + ": the loading process " +
           (WIFSIGNALED(status) ? std::string("died of signal ") + std::to_string(WTERMSIG(status)) : std::string("failed"));
}

} // namespace bus
