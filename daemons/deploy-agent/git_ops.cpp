#include "git_ops.hpp"

#include "deploy/protocol.hpp"

#include <git2.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace deploy_agent {

namespace {

struct git_init {
    git_init()
    {
        git_libgit2_init();
        // The clone's path comes from root's config; it is owned by the repo's user (stomp-git
        // fetches as that user), so libgit2's safe.directory owner check does not apply here.
        git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    }
};

void init()
{
    static git_init once;
}

template <class T, void (*F)(T*)>
struct handle {
    T* p = nullptr;
    handle() = default;
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle()
    {
        if (p) F(p);
    }
    T** out() { return &p; }
    T* get() const { return p; }
};
using repo_h = handle<git_repository, git_repository_free>;
using obj_h = handle<git_object, git_object_free>;
using ref_h = handle<git_reference, git_reference_free>;

std::string last_error(const char* what)
{
    const git_error* e = git_error_last();
    return std::string(what) + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

std::string oid_str(const git_oid* id)
{
    char buf[GIT_OID_HEXSZ + 1];
    git_oid_tostr(buf, sizeof buf, id);
    return buf;
}

std::string rfc3339(long long t)
{
    return deploy::format_time(std::chrono::system_clock::time_point(std::chrono::seconds(t)));
}

// The commit and time a ref peels to.
bool peel(git_repository* repo, const char* refname, ref_info& out)
{
    obj_h obj;
    if (git_revparse_single(obj.out(), repo, refname) != 0) return false;
    long long when = 0;
    if (git_object_type(obj.get()) == GIT_OBJECT_TAG) {
        auto* tag = reinterpret_cast<git_tag*>(obj.get());
        if (const git_signature* s = git_tag_tagger(tag)) when = s->when.time;
    }
    obj_h commit;
    if (git_object_peel(commit.out(), obj.get(), GIT_OBJECT_COMMIT) != 0) return false;
    out.commit = oid_str(git_object_id(commit.get()));
    if (when == 0) when = git_commit_time(reinterpret_cast<git_commit*>(commit.get()));
    out.when = when;
    out.time = rfc3339(when);
    return true;
}

} // namespace

ref_list list_refs(const std::string& path, std::size_t count)
{
    init();
    ref_list out;
    repo_h repo;
    if (git_repository_open_ext(repo.out(), path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
        out.error = last_error("cannot open the clone");
        return out;
    }
    git_reference_iterator* it = nullptr;
    if (git_reference_iterator_new(&it, repo.get()) != 0) {
        out.error = last_error("cannot list refs");
        return out;
    }
    git_reference* ref = nullptr;
    std::size_t seen = 0;
    while (git_reference_next(&ref, it) == 0 && ++seen < 100000) {
        std::string name = git_reference_name(ref);
        git_reference_free(ref);
        ref_info info;
        std::vector<ref_info>* into = nullptr;
        if (name.starts_with("refs/tags/")) {
            info.name = name.substr(10);
            into = &out.tags;
        } else if (name.starts_with("refs/heads/")) {
            info.name = name.substr(11);
            into = &out.branches;
        } else if (name.starts_with("refs/remotes/origin/") && !name.ends_with("/HEAD")) {
            info.name = name.substr(20);
            into = &out.branches;
        }
        if (!into || !peel(repo.get(), name.c_str(), info)) continue;
        if (into == &out.branches &&
            std::any_of(out.branches.begin(), out.branches.end(), [&](const ref_info& b) { return b.name == info.name; }))
            continue;
        into->push_back(std::move(info));
    }
    git_reference_iterator_free(it);
    auto newest = [](const ref_info& a, const ref_info& b) { return a.when != b.when ? a.when > b.when : a.name > b.name; };
    std::sort(out.tags.begin(), out.tags.end(), newest);
    std::sort(out.branches.begin(), out.branches.end(), newest);
    if (count) {
        if (out.tags.size() > count) out.tags.resize(count);
        if (out.branches.size() > count) out.branches.resize(count);
    }
    return out;
}

std::optional<std::string> resolve_tag(const std::string& path, const std::string& tag, bool allow_branches,
                                       std::string& error)
{
    init();
    if (!deploy::valid_tag(tag)) {
        error = "invalid tag name";
        return std::nullopt;
    }
    repo_h repo;
    if (git_repository_open_ext(repo.out(), path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
        error = last_error("cannot open the clone");
        return std::nullopt;
    }
    std::vector<std::string> names{"refs/tags/" + tag};
    if (allow_branches) {
        names.push_back("refs/heads/" + tag);
        names.push_back("refs/remotes/origin/" + tag);
    }
    for (const auto& n : names) {
        // An exact ref lookup: never revparse syntax (no `v1^`, `@{...}`, or abbreviated ids).
        ref_h ref;
        if (git_reference_lookup(ref.out(), repo.get(), n.c_str()) != 0) continue;
        ref_info info;
        if (peel(repo.get(), n.c_str(), info)) return info.commit;
    }
    error = allow_branches ? "no tag or branch '" + tag + "' in the clone" : "no tag '" + tag + "' in the clone";
    return std::nullopt;
}

std::string checkout_tree(const std::string& path, const std::string& commit, const std::string& dest)
{
    init();
    repo_h repo;
    if (git_repository_open_ext(repo.out(), path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0)
        return last_error("cannot open the clone");
    git_oid oid;
    if (git_oid_fromstr(&oid, commit.c_str()) != 0) return "not a commit id";
    obj_h obj;
    if (git_object_lookup(obj.out(), repo.get(), &oid, GIT_OBJECT_COMMIT) != 0) return last_error("no such commit");
    git_checkout_options opts;
    git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
    opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX | GIT_CHECKOUT_DONT_WRITE_INDEX;
    opts.target_directory = dest.c_str();
    opts.dir_mode = 0755;
    opts.file_mode = 0;  // libgit2's default: 0644, 0755 for executables
    if (git_checkout_tree(repo.get(), obj.get(), &opts) != 0) return last_error("checkout failed");
    return {};
}

} // namespace deploy_agent
