#include "deployer.hpp"

#include "git_ops.hpp"

#include "bus/runtime/spawn.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace deploy_agent {

namespace {

using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

std::vector<std::string> clean_env(const std::string& user, std::vector<std::string> extra)
{
    std::string home = "/";
    if (struct passwd* pw = ::getpwnam(user.c_str()); pw && pw->pw_dir) home = pw->pw_dir;
    std::vector<std::string> env{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home,
                                 "USER=" + user, "LOGNAME=" + user, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"};
    for (auto& e : extra) env.push_back(std::move(e));
    return env;
}

// Resolves the user before forking; an unknown user is a failed stage, never a run as root.
std::optional<bus::runtime::identity> who(const std::string& user, std::string& error)
{
    auto id = bus::runtime::lookup_user(user);
    if (!id) error = "no such user " + user;
    return id;
}

deploy::stage failed_stage(std::string name, std::string why, clock_type::time_point t0)
{
    return deploy::stage{std::move(name), 1, std::move(why), since(t0)};
}

std::string combined(const bus::runtime::spawn_result& r, std::size_t max)
{
    std::string s = r.out;
    if (!r.err.empty()) s += (s.empty() || s.back() == '\n' ? "" : "\n") + r.err;
    if (!r.ok()) s += (s.empty() || s.back() == '\n' ? "" : "\n") + r.describe();
    return deploy::bound_output(std::move(s), max);
}

deploy::stage run_child(std::string name, std::vector<std::string> argv, const std::string& cwd, const std::string& user,
                        std::vector<std::string> env, std::chrono::milliseconds timeout, std::size_t max_output)
{
    auto t0 = clock_type::now();
    std::string err;
    auto id = who(user, err);
    if (!id) return failed_stage(std::move(name), err, t0);
    bus::runtime::spawn_options so;
    so.argv = std::move(argv);
    so.env = clean_env(user, std::move(env));
    so.cwd = cwd;
    so.timeout = timeout;
    so.max_out = max_output;
    so.max_err = max_output;
    so.user = std::move(id);
    so.die_with_parent = true;
    auto r = bus::runtime::spawn(so);
    int code = r.started && !r.timed_out && r.signal == 0 ? r.exit_code : (r.exit_code > 0 ? r.exit_code : 1);
    if (r.ok()) code = 0;
    else if (code == 0) code = 1;
    return deploy::stage{std::move(name), code, combined(r, max_output), since(t0)};
}

bool executable(const std::string& path)
{
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

// A hook stage: required hooks that are missing fail as the original's ("does not exist or is
// not executable"); optional ones are skipped (exit 0, said in the output).
deploy::stage hook(const deploy_params& p, const std::string& script, bool required, const std::string& tag,
                   const std::string& release)
{
    std::string name = script.substr(0, script.size() - 3);  // pre-deploy.sh -> pre-deploy
    std::string path = p.repo->controldir + "/" + script;
    if (!executable(path)) {
        if (required) return deploy::stage{name, 1, "File '" + path + "' does not exist or is not executable", 0};
        return deploy::stage{name, 0, "skipped: no " + path, 0};
    }
    std::vector<std::string> env{"DEPLOY_REPO=" + p.repo->name, "DEPLOY_TAG=" + tag, "DEPLOY_SITEDIR=" + p.repo->sitedir,
                                 "DEPLOY_RELEASE=" + release, "DEPLOY_REQUEST_ID=" + p.request_id};
    return run_child(name, {path, "-t", tag}, p.repo->controldir, p.repo->user, std::move(env), p.hook_timeout,
                     p.max_output);
}

// Removes a release directory as the repo's user (a user-owned tree is never walked as root).
void remove_release(const deploy_params& p, const std::string& path)
{
    if (path.empty() || !path.starts_with(p.repo->releases() + "/")) return;
    run_child("cleanup", {"/bin/rm", "-rf", "--", path}, "/", p.repo->user, {}, std::chrono::minutes(5), 4096);
}

// `<sitedir>.releases`: a real directory (created 0755 by the agent), never a symlink.
std::string ensure_releases_dir(const deploy_params& p)
{
    auto dir = p.repo->releases();
    struct stat st{};
    if (::lstat(dir.c_str(), &st) != 0) {
        if (::mkdir(dir.c_str(), 0755) != 0) return "cannot create " + dir + ": " + std::strerror(errno);
        return {};
    }
    if (!S_ISDIR(st.st_mode)) return dir + " is not a directory (a symlink is refused)";
    return {};
}

// The new release directory, owned by the repo's user; a clash in the same second gets a suffix.
std::string make_release_dir(const deploy_params& p, const std::string& tag, std::string& error)
{
    auto id = bus::runtime::lookup_user(p.repo->user);
    if (!id) {
        error = "no such user " + p.repo->user;
        return {};
    }
    auto base = p.repo->releases() + "/" + release_name(sys_clock::now(), tag);
    for (int i = 0; i < 100; ++i) {
        auto path = i == 0 ? base : base + "." + std::to_string(i);
        if (::mkdir(path.c_str(), 0755) == 0) {
            if (::chown(path.c_str(), id->uid, id->gid) != 0) {
                error = "cannot chown " + path + ": " + std::strerror(errno);
                ::rmdir(path.c_str());
                return {};
            }
            return path;
        }
        if (errno != EEXIST) {
            error = "cannot create " + path + ": " + std::strerror(errno);
            return {};
        }
    }
    error = "cannot find a free release name for " + base;
    return {};
}

// The sitedir's current target ("" when absent). A real directory (the original's work tree) is
// moved into the releases directory first, once, so that the switch can be a rename.
std::string current_target(const deploy_params& p, std::string& error)
{
    const auto& site = p.repo->sitedir;
    struct stat st{};
    if (::lstat(site.c_str(), &st) != 0) return {};
    if (S_ISLNK(st.st_mode)) {
        std::error_code ec;
        auto t = fs::read_symlink(site, ec);
        if (ec) error = "cannot read " + site + ": " + ec.message();
        return t.string();
    }
    if (S_ISDIR(st.st_mode)) {
        auto moved = p.repo->releases() + "/" + release_name(sys_clock::now(), "initial");
        if (::rename(site.c_str(), moved.c_str()) != 0) {
            error = "cannot move the directory " + site + " into " + moved + ": " + std::strerror(errno);
            return {};
        }
        if (::symlink(moved.c_str(), site.c_str()) != 0) {
            error = "cannot link " + site + ": " + std::strerror(errno);
            return {};
        }
        return moved;
    }
    error = site + " is neither a symlink nor a directory";
    return {};
}

// The atomic switch: a temporary symlink next to the sitedir, renamed over it.
std::string switch_link(const std::string& site, const std::string& target)
{
    std::random_device rd;
    auto tmp = site + ".tmp-" + std::to_string(rd()) + std::to_string(::getpid());
    if (::symlink(target.c_str(), tmp.c_str()) != 0) return "cannot create " + tmp + ": " + std::strerror(errno);
    if (::rename(tmp.c_str(), site.c_str()) != 0) {
        std::string why = "cannot rename " + tmp + " to " + site + ": " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return why;
    }
    return {};
}

std::string state_path(const std::string& state_dir, const std::string& repo) { return state_dir + "/" + repo + ".json"; }

std::string write_state(const std::string& state_dir, const repo_record& r)
{
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    auto path = state_path(state_dir, r.repo);
    auto tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return "cannot write " + tmp + ": " + std::strerror(errno);
    auto text = to_json(r).dump(2) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return "cannot write " + path + ": " + std::strerror(errno);
    }
    return {};
}

std::string now_text() { return deploy::format_time(sys_clock::now()); }

void fill_data(outcome& o, const deploy_params& p, const std::string& release)
{
    o.data = {{"repo", p.repo->name}, {"tag", o.tag}, {"commit", o.commit}, {"previous_tag", o.previous_tag},
              {"release", release}};
}

outcome fail(outcome o, deploy::status code, std::string stage, std::string message)
{
    o.code = code;
    o.failed_stage = std::move(stage);
    o.message = std::move(message);
    return o;
}

// pre-link, link, post-deploy and the record, shared by deploy and rollback. `fresh`: the release
// was made by this run (removed again when a later stage fails).
outcome link_and_finish(const deploy_params& p, outcome o, const std::string& release, bool fresh, repo_record rec,
                        bool rollback)
{
    auto drop_fresh = [&] {
        if (fresh) remove_release(p, release);
    };
    auto s = hook(p, "pre-link.sh", false, o.tag, release);
    o.stages.push_back(s);
    if (s.exit_code != 0) {
        drop_fresh();
        return fail(std::move(o), deploy::status::aborted, "pre-link", "pre-link failed; the previous release stays live");
    }
    auto t0 = clock_type::now();
    std::string err;
    auto before = current_target(p, err);
    if (err.empty()) err = switch_link(p.repo->sitedir, release);
    o.stages.push_back(deploy::stage{"link", err.empty() ? 0 : 1, err, since(t0)});
    if (!err.empty()) {
        drop_fresh();
        return fail(std::move(o), deploy::status::error, "link", err);
    }
    s = hook(p, "post-deploy.sh", false, o.tag, release);
    o.stages.push_back(s);
    if (s.exit_code != 0) {
        std::string back = before.empty() ? "" : switch_link(p.repo->sitedir, before);
        if (before.empty()) ::unlink(p.repo->sitedir.c_str());
        drop_fresh();
        return fail(std::move(o), deploy::status::aborted, "post-deploy",
                    "post-deploy failed; switched back to the previous release" + (back.empty() ? "" : ": " + back));
    }
    std::vector<std::string> drop;
    if (rollback) {
        drop.push_back(rec.releases.back().release);
        rec.releases.pop_back();
        rec.releases.back().time = now_text();
        rec.releases.back().by = p.caller;
        rec.releases.back().request_id = p.request_id;
    } else {
        drop = push_release(rec, release_record{o.tag, o.commit, release, now_text(), p.caller, p.request_id},
                            p.repo->keep);
    }
    if (auto why = write_state(p.state_dir, rec); !why.empty())
        o.stages.push_back(deploy::stage{"record", 1, why, 0});
    for (const auto& d : drop) remove_release(p, d);
    o.message = (rollback ? "rolled back to " : "deployed ") + o.tag;
    return o;
}

} // namespace

repo_record load_state(const std::string& state_dir, const std::string& repo, std::string* error)
{
    repo_record r;
    r.repo = repo;
    std::ifstream in(state_path(state_dir, repo));
    if (!in) return r;
    std::stringstream ss;
    ss << in.rdbuf();
    std::string why;
    auto got = repo_record_from_json(ss.str(), why);
    if (!got) {
        if (error) *error = state_path(state_dir, repo) + ": " + why;
        return r;
    }
    got->repo = repo;
    return *got;
}

outcome run_deploy(const deploy_params& p, const std::string& tag, const std::string& commit)
{
    outcome o;
    o.tag = tag;
    o.commit = commit;
    std::string err;
    auto rec = load_state(p.state_dir, p.repo->name, &err);
    if (!err.empty()) return fail(std::move(o), deploy::status::error, "state", err);
    if (auto* l = rec.live()) o.previous_tag = l->tag;
    fill_data(o, p, "");

    auto s = hook(p, "pre-deploy.sh", true, tag, "");
    o.stages.push_back(s);
    if (s.exit_code != 0)
        return fail(std::move(o), deploy::status::aborted, "pre-deploy", "pre-deploy failed; nothing changed");

    auto t0 = clock_type::now();
    if (auto why = ensure_releases_dir(p); !why.empty()) {
        o.stages.push_back(failed_stage("checkout", why, t0));
        return fail(std::move(o), deploy::status::error, "checkout", why);
    }
    auto release = make_release_dir(p, tag, err);
    if (release.empty()) {
        o.stages.push_back(failed_stage("checkout", err, t0));
        return fail(std::move(o), deploy::status::error, "checkout", err);
    }
    s = run_child("checkout", {p.self_exe, "--checkout-worker", p.repo->repo, commit, release}, "/", p.repo->user, {},
                  p.checkout_timeout, p.max_output);
    o.stages.push_back(s);
    if (s.exit_code != 0) {
        remove_release(p, release);
        return fail(std::move(o), deploy::status::aborted, "checkout", "checkout failed; the previous release stays live");
    }
    fill_data(o, p, release);
    return link_and_finish(p, std::move(o), release, true, std::move(rec), false);
}

outcome run_rollback(const deploy_params& p)
{
    outcome o;
    std::string err;
    auto rec = load_state(p.state_dir, p.repo->name, &err);
    if (!err.empty()) return fail(std::move(o), deploy::status::error, "state", err);
    const auto* prev = rec.previous();
    if (!prev) return fail(std::move(o), deploy::status::aborted, "state", "no previous release to roll back to");
    o.tag = prev->tag;
    o.commit = prev->commit;
    o.previous_tag = rec.live()->tag;
    std::string release = prev->release;
    struct stat st{};
    if (::lstat(release.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(std::move(o), deploy::status::error, "state", "the previous release " + release + " is gone");
    fill_data(o, p, release);
    auto s = hook(p, "pre-deploy.sh", true, o.tag, release);
    o.stages.push_back(s);
    if (s.exit_code != 0)
        return fail(std::move(o), deploy::status::aborted, "pre-deploy", "pre-deploy failed; nothing changed");
    o.stages.push_back(deploy::stage{"checkout", 0, "kept: " + release, 0});
    return link_and_finish(p, std::move(o), release, false, std::move(rec), true);
}

outcome run_command(const command_config& c, std::size_t max_output)
{
    outcome o;
    auto s = run_child(c.name, c.argv, c.dir, c.user, c.env, c.timeout, max_output);
    o.data = {{"command", c.name}, {"exit_code", s.exit_code}};
    o.stages.push_back(s);
    if (s.exit_code != 0) return fail(std::move(o), deploy::status::aborted, c.name, c.name + " failed");
    o.message = c.name + " ran";
    return o;
}

int checkout_worker_main(int argc, char** argv)
{
    if (argc != 5) {
        std::fprintf(stderr, "usage: deploy-agent --checkout-worker CLONE COMMIT DEST\n");
        return 2;
    }
    auto why = checkout_tree(argv[2], argv[3], argv[4]);
    if (!why.empty()) {
        std::fprintf(stderr, "%s\n", why.c_str());
        return 1;
    }
    return 0;
}

} // namespace deploy_agent
