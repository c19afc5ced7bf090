#include "jenkins_helper.hpp"

#include "bus/legacy.hpp"

#include <charconv>

namespace jenkins_helper {

result make_plan(stage s, const env_lookup& env, const topics& t, bus::wire_format fmt, const std::string& host)
{
    result r;
    auto job = env("JOB_NAME");
    auto number = env("BUILD_NUMBER");
    if (!job || job->empty()) {
        r.error = "JOB_NAME is not set: run jenkins-helper from a Jenkins build step";
        return r;
    }
    if (!number || number->empty()) {
        r.error = "BUILD_NUMBER is not set: run jenkins-helper from a Jenkins build step";
        return r;
    }
    plan p;
    bus::build_event b;
    b.job = *job;
    auto [ptr, ec] = std::from_chars(number->data(), number->data() + number->size(), b.number);
    if (ec != std::errc{} || ptr != number->data() + number->size() || b.number < 0) {
        r.error = "BUILD_NUMBER '" + *number + "' is not a number";
        return r;
    }
    b.url = env("BUILD_URL").value_or("");
    b.branch = env("GIT_BRANCH").value_or("");
    b.commit = env("GIT_COMMIT").value_or("");
    // The original crashed on an unset GIT_BRANCH; it is only missing information.
    for (auto v : {"BUILD_URL", "GIT_BRANCH", "GIT_COMMIT"})
        if (!env(v) || env(v)->empty()) p.warnings.push_back(std::string(v) + " is not set; reporting it empty");
    b.repo = b.branch.substr(0, b.branch.find('/'));
    switch (s) {
    case stage::begin: b.phase = bus::build_phase::started; break;
    case stage::success:
        b.phase = bus::build_phase::completed;
        b.status = "SUCCESS";
        break;
    case stage::failure:
        b.phase = bus::build_phase::completed;
        b.status = "FAILURE";
        break;
    }
    auto ev = bus::make_event(b, host);
    const std::string& dest = s == stage::begin ? t.begin : s == stage::success ? t.success : t.failure;
    // The original's Repo:/URL:/Status: body and subject, to the original topics...
    for (auto& f : bus::encode(ev, "/topic/" + dest, bus::wire_format::legacy)) p.frames.push_back(std::move(f));
    // ...the one-line event for eventbot (every call, as the original)...
    auto subject = bus::legacy::jenkins_helper(b).subject;
    auto notice = bus::make_event(bus::notice_event{subject}, host);
    for (auto& f : bus::encode(notice, "/topic/" + t.events, bus::wire_format::legacy)) p.frames.push_back(std::move(f));
    // ...and the build event for deploykit consumers (native unless the site asked for legacy only).
    if (!t.builds.empty() && fmt != bus::wire_format::legacy)
        for (auto& f : bus::encode(ev, "/topic/" + t.builds, bus::wire_format::native)) p.frames.push_back(std::move(f));
    r.value = std::move(p);
    return r;
}

} // namespace jenkins_helper
