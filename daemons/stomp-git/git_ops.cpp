#include "git_ops.hpp"

#include <git2.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <algorithm>
#include <fstream>
#include <system_error>

namespace stomp_git {

namespace fs = std::filesystem;

namespace {

std::string last_error(std::string_view what)
{
    const git_error* e = git_error_last();
    return std::string(what) + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

template <class T, void (*Free)(T*)>
struct handle {
    T* p = nullptr;
    ~handle()
    {
        if (p) Free(p);
    }
    T** out() { return &p; }
    T* get() const { return p; }
};

using repo_h = handle<git_repository, git_repository_free>;
using remote_h = handle<git_remote, git_remote_free>;
using ref_h = handle<git_reference, git_reference_free>;
using commit_h = handle<git_commit, git_commit_free>;
using index_h = handle<git_index, git_index_free>;
using tree_h = handle<git_tree, git_tree_free>;
using object_h = handle<git_object, git_object_free>;

std::string oid_str(const git_oid* oid)
{
    char buf[GIT_OID_HEXSZ + 1];
    git_oid_tostr(buf, sizeof buf, oid);
    return buf;
}

std::string rev_of(git_repository* r, const std::string& ref)
{
    git_oid oid;
    if (git_reference_name_to_id(&oid, r, ref.c_str()) != 0) return std::string(40, '0');
    return oid_str(&oid);
}

int credentials_cb(git_credential** out, const char* /*url*/, const char* user, unsigned int allowed, void* payload)
{
    auto* c = static_cast<const credentials*>(payload);
    if ((allowed & GIT_CREDENTIAL_SSH_KEY) && !c->ssh_key.empty()) {
        std::string pub = c->ssh_key + ".pub";
        return git_credential_ssh_key_new(out, user ? user : "git", fs::exists(pub) ? pub.c_str() : nullptr,
                                          c->ssh_key.c_str(), nullptr);
    }
    if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && !c->https_user.empty())
        return git_credential_userpass_plaintext_new(out, c->https_user.c_str(), c->https_token.c_str());
    return GIT_PASSTHROUGH;
}

// Writes the tree of `commit` into the empty directory `dir` (no index shared with anything).
bool export_tree(git_repository* r, git_commit* commit, const fs::path& dir, std::string& error)
{
    tree_h tree;
    if (git_commit_tree(tree.out(), commit) != 0) {
        error = last_error("reading the commit's tree");
        return false;
    }
    index_h empty;
    git_index_new(empty.out());
    git_checkout_options opts;
    git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
    opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_RECREATE_MISSING | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    std::string target = dir.string();
    opts.target_directory = target.c_str();
    opts.baseline_index = empty.get();
    if (git_checkout_tree(r, reinterpret_cast<git_object*>(tree.get()), &opts) != 0) {
        error = last_error("checking out into " + target);
        return false;
    }
    return true;
}

bool lookup_commit(git_repository* r, const std::string& ref, commit_h& out, std::string& error)
{
    git_oid oid;
    if (git_reference_name_to_id(&oid, r, ref.c_str()) != 0) {
        error = ref + " does not exist after the fetch";
        return false;
    }
    if (git_commit_lookup(out.out(), r, &oid) != 0) {
        error = last_error("looking up " + ref);
        return false;
    }
    return true;
}

std::string stamp()
{
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count());
}

// Replaces `target` (a directory) with a fresh export: written beside it, then swapped in with
// renames, so readers never see a half-written tree.
bool publish_dir(git_repository* r, git_commit* c, const fs::path& target, std::string& error)
{
    fs::path fresh = target.string() + ".deploykit-new-" + stamp();
    fs::path old = target.string() + ".deploykit-old-" + stamp();
    std::error_code ec;
    fs::create_directories(fresh, ec);
    if (ec) {
        error = fresh.string() + ": " + ec.message();
        return false;
    }
    if (!export_tree(r, c, fresh, error)) {
        fs::remove_all(fresh, ec);
        return false;
    }
    bool had = fs::exists(target);
    if (had) fs::rename(target, old, ec);
    if (!ec) fs::rename(fresh, target, ec);
    if (ec) {
        error = target.string() + ": " + ec.message();
        if (had && !fs::exists(target)) fs::rename(old, target, ec);
        fs::remove_all(fresh, ec);
        return false;
    }
    if (had) fs::remove_all(old, ec);
    return true;
}

} // namespace

std::string environment_name(std::string_view branch)
{
    std::string out;
    for (char ch : branch) {
        char l = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        out.push_back((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '_' ? l : '_');
    }
    return out;
}

outcome fetch_and_publish(const repo_entry& e, const credentials& creds)
{
    outcome o;
    git_libgit2_init();
    // The paths come from the administrator's config and the worker already runs as the
    // repository's owner; a local origin owned by someone else (the central bare repository)
    // must still be fetchable.
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    struct shutdown {
        ~shutdown() { git_libgit2_shutdown(); }
    } at_exit;
    repo_h repo;
    if (git_repository_open(repo.out(), e.path.c_str()) != 0) {
        o.error = last_error("opening " + e.path.string());
        return o;
    }
    o.ref = "refs/remotes/origin/" + e.branch;
    o.old_rev = rev_of(repo.get(), o.ref);

    remote_h remote;
    if (git_remote_lookup(remote.out(), repo.get(), "origin") != 0) {
        o.error = last_error("remote 'origin' of " + e.path.string());
        return o;
    }
    git_fetch_options fo;
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
    fo.callbacks.credentials = credentials_cb;
    fo.callbacks.payload = const_cast<credentials*>(&creds);
    if (git_remote_fetch(remote.get(), nullptr, &fo, "stomp-git fetch") != 0) {
        o.error = last_error("fetching " + e.name);
        return o;
    }
    o.new_rev = rev_of(repo.get(), o.ref);

    switch (e.how) {
    case mode::normal: break;
    case mode::trusting: {
        commit_h c;
        if (!lookup_commit(repo.get(), o.ref, c, o.error) || !publish_dir(repo.get(), c.get(), e.target, o.error))
            return o;
        o.detail = "published origin/" + e.branch + " to " + e.target.string();
        break;
    }
    case mode::dangerous: {
        // The clone's own checkout follows origin/<branch>, on its local branch (the original
        // detached HEAD and never moved the branch).
        commit_h c;
        if (!lookup_commit(repo.get(), o.ref, c, o.error)) return o;
        ref_h branch;
        std::string local = "refs/heads/" + e.branch;
        if (git_reference_create(branch.out(), repo.get(), local.c_str(), git_commit_id(c.get()), 1,
                                 "stomp-git: follow origin") != 0 ||
            git_repository_set_head(repo.get(), local.c_str()) != 0 ||
            git_reset(repo.get(), reinterpret_cast<git_object*>(c.get()), GIT_RESET_HARD, nullptr) != 0) {
            o.error = last_error("updating the checkout of " + e.name);
            return o;
        }
        o.detail = "checked out " + e.branch + " in " + e.path.string();
        break;
    }
    case mode::puppetmaster: {
        // Every remote branch becomes an environment directory; deleted branches' go away.
        git_branch_iterator* it = nullptr;
        if (git_branch_iterator_new(&it, repo.get(), GIT_BRANCH_REMOTE) != 0) {
            o.error = last_error("listing branches");
            return o;
        }
        std::set<std::string> live;
        git_reference* ref = nullptr;
        git_branch_t type;
        int published = 0;
        while (git_branch_next(&ref, &type, it) == 0) {
            std::string name = git_reference_name(ref);
            git_reference_free(ref);
            const std::string prefix = "refs/remotes/origin/";
            if (!name.starts_with(prefix) || name == prefix + "HEAD") continue;
            std::string branch = name.substr(prefix.size());
            if (!bus::valid_ref_name("refs/heads/" + branch)) continue;  // never a path from an unsafe name
            std::string env = environment_name(branch);
            live.insert(env);
            commit_h c;
            std::string err;
            if (!lookup_commit(repo.get(), name, c, err)) continue;
            fs::path dir = e.target / env;
            std::error_code ec;
            fs::create_directories(e.target, ec);
            if (!publish_dir(repo.get(), c.get(), dir, err)) {
                o.error = err;
                git_branch_iterator_free(it);
                return o;
            }
            std::ofstream(dir / ".deploykit-environment") << branch << "\n";
            ++published;
        }
        git_branch_iterator_free(it);
        std::error_code ec;
        for (auto& d : fs::directory_iterator(e.target, ec))
            if (d.is_directory() && fs::exists(d.path() / ".deploykit-environment") &&
                !live.count(d.path().filename().string()))
                fs::remove_all(d.path(), ec);
        o.detail = "published " + std::to_string(published) + " environment(s) under " + e.target.string();
        break;
    }
    case mode::atomic: {
        // A fresh release directory, then one rename of a symlink: readers see old or new.
        commit_h c;
        if (!lookup_commit(repo.get(), o.ref, c, o.error)) return o;
        fs::path releases = e.target / "releases";
        std::string id = o.new_rev.substr(0, 12) + "-" + stamp();
        fs::path rel = releases / id;
        std::error_code ec;
        fs::create_directories(rel, ec);
        if (ec) {
            o.error = rel.string() + ": " + ec.message();
            return o;
        }
        if (!export_tree(repo.get(), c.get(), rel, o.error)) {
            fs::remove_all(rel, ec);
            return o;
        }
        fs::path link = e.target / "current";
        fs::path tmp = e.target / (".current-" + id);
        fs::create_directory_symlink(fs::path("releases") / id, tmp, ec);
        if (!ec) fs::rename(tmp, link, ec);
        if (ec) {
            o.error = link.string() + ": " + ec.message();
            return o;
        }
        std::vector<fs::path> all;
        for (auto& d : fs::directory_iterator(releases, ec)) all.push_back(d.path());
        std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
            auto ta = a.filename().string(), tb = b.filename().string();
            return ta.substr(ta.find('-') + 1) < tb.substr(tb.find('-') + 1);
        });
        while (all.size() > e.keep) {
            if (all.front().filename() != id) fs::remove_all(all.front(), ec);
            all.erase(all.begin());
        }
        o.detail = "release " + id + " is current in " + e.target.string();
        break;
    }
    }
    o.ok = true;
    return o;
}

} // namespace stomp_git
