#include "notifier.hpp"

#include "send.hpp"

#include "bus/detail/files.hpp"
#include "bus/event.hpp"
#include "bus/http/metrics.hpp"
#include "bus/runtime/service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <variant>

namespace herald::alerts {

namespace net = boost::asio;
using namespace std::chrono;

// One action channel: a bounded queue drained by one coroutine, each delivery retried a bounded
// number of times.
struct notifier::channel {
    using item = std::variant<std::string, bus::event>;
    std::string name;
    std::size_t limit;
    int retries;
    duration retry_delay;
    std::function<net::awaitable<outcome>(const item&)> deliver;
    std::deque<item> queue;
    net::steady_timer wake;
    std::atomic<double> length{0};
    bus::http::counter& sent;
    bus::http::counter& failed;
    bus::http::counter& dropped;

    channel(bus::runtime::service& svc, bus::http::registry& r, std::string n, std::size_t lim, int tries, duration delay)
        : name(std::move(n)), limit(lim), retries(tries), retry_delay(delay), wake(svc.io()),
          sent(r.add_counter("alerts_notices_total", "Alert notices by channel and result (dropped: queue full)",
                             {{"channel", name}, {"result", "sent"}})),
          failed(r.add_counter("alerts_notices_total", "Alert notices by channel and result (dropped: queue full)",
                               {{"channel", name}, {"result", "failed"}})),
          dropped(r.add_counter("alerts_notices_total", "Alert notices by channel and result (dropped: queue full)",
                                {{"channel", name}, {"result", "dropped"}}))
    {
        wake.expires_at(steady_clock::time_point::max());
        r.add_callback("alerts_queue_length", "Alert notices waiting per channel", "gauge",
                       [this] { return length.load(); }, {{"channel", name}});
    }

    void push(item i, spdlog::logger& log)
    {
        if (queue.size() >= limit) {
            queue.pop_front();
            dropped.inc();
            log.warn("alerts: {} queue full ({}): dropped the oldest notice", name, limit);
        }
        queue.push_back(std::move(i));
        length.store(static_cast<double>(queue.size()));
        wake.cancel();
    }
};

notifier::notifier(bus::runtime::service& svc, settings s, std::filesystem::path state_file, bus::http::registry& metrics,
                   publish_fn publish, std::string host)
    : svc_(svc), engine_(std::move(s), system_clock::now()), state_file_(std::move(state_file)), publish_(std::move(publish)),
      host_(std::move(host)),
      fired_(metrics.add_counter("alerts_decisions_total", "Alert decisions", {{"action", "fire"}})),
      recovered_(metrics.add_counter("alerts_decisions_total", "Alert decisions", {{"action", "recover"}}))
{
    const auto& cfg = engine_.config();
    bus_ = std::make_unique<channel>(svc, metrics, "bus", 1000, 3, milliseconds(1000));
    bus_->deliver = [this](const channel::item& i) -> net::awaitable<outcome> {
        bool ok = co_await publish_(std::get<bus::event>(i));
        co_return outcome{ok, !ok, ok ? "" : "not receipted"};
    };
    if (cfg.mail.enabled()) {
        mail_ = std::make_unique<channel>(svc, metrics, "mail", cfg.mail.queue, cfg.mail.retries, cfg.mail.retry_delay);
        mail_->deliver = [this](const channel::item& i) -> net::awaitable<outcome> {
            const mail_settings* m = &engine_.config().mail;
            const std::string* msg = &std::get<std::string>(i);
            co_return co_await svc_.blocking([m, msg] { return send_mail(*m, *msg); });
        };
    }
    if (cfg.webhook.enabled()) {
        webhook_ = std::make_unique<channel>(svc, metrics, "webhook", cfg.webhook.queue, cfg.webhook.retries,
                                             cfg.webhook.retry_delay);
        webhook_->deliver = [this](const channel::item& i) -> net::awaitable<outcome> {
            const webhook_settings* w = &engine_.config().webhook;
            const std::string* body = &std::get<std::string>(i);
            co_return co_await svc_.blocking([w, body] { return post_webhook(*w, *body); });
        };
    }
    metrics.add_callback("alerts_firing", "Alerts firing now (lost heartbeat sources and active pattern rules)", "gauge",
                         [this] { return firing_.load(); });
    metrics.add_callback("alerts_sources", "Heartbeat sources watched", "gauge", [this] { return sources_.load(); });
    metrics.add_callback("alerts_untracked_sources_total", "Heartbeat sources not watched: max-sources reached", "counter",
                         [this] { return untracked_.load(); });
}

notifier::~notifier() = default;

void notifier::load_state()
{
    std::error_code ec;
    if (!std::filesystem::exists(state_file_, ec)) {
        svc_.log().info("alerts: no state file {} yet: a first start", state_file_.string());
        return;
    }
    std::string why;
    try {
        why = engine_.restore(bus::detail::read_file(state_file_));
    } catch (const std::exception& e) {
        why = e.what();
    }
    if (!why.empty()) {
        auto bad = state_file_;
        bad += ".bad";
        std::filesystem::rename(state_file_, bad, ec);
        svc_.log().error("alerts: state file {}: {}; set aside as {}, watching starts empty", state_file_.string(), why,
                         bad.string());
        return;
    }
    sources_.store(static_cast<double>(engine_.last_seen().size()));
    svc_.log().info("alerts: watching {} known heartbeat sources from {}", engine_.last_seen().size(), state_file_.string());
}

void notifier::start()
{
    next_check_ = system_clock::now() + engine_.config().check_interval;
    svc_.spawn(drain(*bus_), "alerts bus");
    if (mail_) svc_.spawn(drain(*mail_), "alerts mail");
    if (webhook_) svc_.spawn(drain(*webhook_), "alerts webhook");
}

void notifier::on_event(const input& e)
{
    handle(engine_.on_event(e, system_clock::now()));
}

void notifier::tick(time_point now)
{
    if (now < next_check_) return;
    next_check_ = now + engine_.config().check_interval;
    handle(engine_.tick(now));
    sources_.store(static_cast<double>(engine_.last_seen().size()));
    if (engine_.dirty() && !writing_ && !state_file_.empty() && !svc_.stopping()) svc_.spawn(write_state(), "alerts state");
}

void notifier::handle(std::vector<decision> ds)
{
    auto now = system_clock::now();
    for (auto& d : ds) {
        (d.action == decision::what::fire ? fired_ : recovered_).inc();
        auto level = d.action == decision::what::fire ? spdlog::level::warn : spdlog::level::info;
        svc_.log().log(level, "alert {} {}: {}", d.rule, d.state(), d.text);
        if (d.channels & to_bus) {
            bus::alert_event a;
            a.rule = d.rule;
            a.kind = d.kind;
            a.state = d.state();
            a.daemon = d.daemon;
            a.source_host = d.kind == "heartbeat" ? d.host : std::string();
            a.text = d.text;
            a.event_id = d.event_id;
            if (d.kind == "heartbeat") a.last_seen = rfc3339(d.last_seen);
            a.suppressed = d.suppressed;
            bus_->push(bus::make_event(std::move(a), host_), svc_.log());
        }
        if ((d.channels & to_mail) && mail_) mail_->push(mail_message(engine_.config().mail, d, host_, now), svc_.log());
        if ((d.channels & to_webhook) && webhook_) webhook_->push(webhook_body(d, host_, now), svc_.log());
    }
    firing_.store(static_cast<double>(engine_.firing()));
    untracked_.store(static_cast<double>(engine_.untracked()));
}

net::awaitable<void> notifier::flush() { co_await write_state(); }

net::awaitable<void> notifier::write_state()
{
    if (!engine_.dirty() || writing_ || state_file_.empty()) co_return;
    writing_ = true;
    // One heap object for the worker (GCC 12: no coroutine-frame locals captured, no try around
    // the co_await).
    auto job = std::make_shared<std::pair<std::filesystem::path, std::string>>(state_file_, engine_.snapshot());
    auto error = co_await svc_.blocking([job]() -> std::string {
        try {
            write_atomically(job->first, job->second);
            return {};
        } catch (const std::exception& e) {
            return e.what();
        }
    });
    if (!error.empty()) svc_.log().error("alerts: cannot write the state file: {}", error);
    writing_ = false;
}

net::awaitable<void> notifier::drain(channel& ch)
{
    while (!svc_.stopping()) {
        if (ch.queue.empty()) {
            // push() cancels the wait; the second bounds how long an idle worker holds a stop.
            ch.wake.expires_after(seconds(1));
            co_await ch.wake.async_wait(net::as_tuple(net::use_awaitable));
            continue;
        }
        auto item = std::move(ch.queue.front());
        ch.queue.pop_front();
        ch.length.store(static_cast<double>(ch.queue.size()));
        outcome o;
        for (int attempt = 0;; ++attempt) {
            o = co_await ch.deliver(item);
            if (o.ok || !o.retry || attempt >= ch.retries) break;
            svc_.log().warn("alerts: {} delivery failed ({}); retry {} of {}", ch.name, o.error, attempt + 1, ch.retries);
            if (!co_await svc_.sleep_for(ch.retry_delay)) break;
        }
        if (o.ok) {
            ch.sent.inc();
        } else {
            ch.failed.inc();
            svc_.log().error("alerts: {} delivery failed: {}", ch.name, o.error);
        }
    }
}

void write_atomically(const std::filesystem::path& path, const std::string& data)
{
    auto tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    try {
        bus::detail::write_all(fd, data, tmp);
        if (::fsync(fd) != 0) throw std::runtime_error("cannot fsync " + tmp.string() + ": " + std::strerror(errno));
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + std::strerror(err));
    }
    bus::detail::fsync_dir(path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path());
}

} // namespace herald::alerts
