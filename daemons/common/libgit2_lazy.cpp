// libgit2 loaded at its first use (lazy_library.hpp): the functions deploykit calls, each defined
// here with libgit2's own name and signature (the compiler checks them against git2.h) and
// forwarded to the soname the build linked against (libgit2.so.1.5 on Debian 12) through a table
// resolved once. No target links -lgit2. The definitions below were generated from git2.h's
// GIT_EXTERN declarations for the symbols the daemons use (nm -u of their objects); a function
// used later and missing here is a link error, not a silent fallback.
#include "bus/detail/lazy_forward.hpp"
#include "git_lazy.hpp"

#include <git2.h>

#include <cstdarg>

namespace {

#define DK_GIT_FUNCTIONS(X) \
    X(git_branch_iterator_free) \
    X(git_branch_iterator_new) \
    X(git_branch_next) \
    X(git_checkout_options_init) \
    X(git_checkout_tree) \
    X(git_commit_free) \
    X(git_commit_id) \
    X(git_commit_lookup) \
    X(git_commit_time) \
    X(git_commit_tree) \
    X(git_credential_ssh_key_memory_new) \
    X(git_credential_ssh_key_new) \
    X(git_credential_username_new) \
    X(git_credential_userpass_plaintext_new) \
    X(git_error_last) \
    X(git_error_set_str) \
    X(git_fetch_options_init) \
    X(git_index_free) \
    X(git_index_new) \
    X(git_libgit2_init) \
    X(git_libgit2_opts) \
    X(git_libgit2_shutdown) \
    X(git_object_free) \
    X(git_object_id) \
    X(git_object_lookup) \
    X(git_object_peel) \
    X(git_object_type) \
    X(git_oid_fromstr) \
    X(git_oid_tostr) \
    X(git_reference_create) \
    X(git_reference_free) \
    X(git_reference_iterator_free) \
    X(git_reference_iterator_new) \
    X(git_reference_lookup) \
    X(git_reference_name) \
    X(git_reference_name_to_id) \
    X(git_reference_next) \
    X(git_reference_symbolic_target) \
    X(git_reference_target) \
    X(git_remote_create) \
    X(git_remote_fetch) \
    X(git_remote_free) \
    X(git_remote_lookup) \
    X(git_remote_url) \
    X(git_repository_free) \
    X(git_repository_init) \
    X(git_repository_open) \
    X(git_repository_open_bare) \
    X(git_repository_open_ext) \
    X(git_repository_set_head) \
    X(git_reset) \
    X(git_revparse_single) \
    X(git_tag_tagger) \
    X(git_tree_free)

BUS_LAZY_TABLE(DK_GIT_FUNCTIONS, deploykit::libgit2_library)

} // namespace

namespace deploykit {

lazy_library& libgit2_library()
{
    static lazy_library lib(DK_LIBGIT2_SONAME, names);
    return lib;
}

std::string libgit2_check() { return libgit2_library().probe(); }

} // namespace deploykit

extern "C" {

void git_branch_iterator_free(git_branch_iterator *iter) { BUS_LAZY_CALL(git_branch_iterator_free)(iter); }
int git_branch_iterator_new(git_branch_iterator **out, git_repository *repo, git_branch_t list_flags) { return BUS_LAZY_CALL(git_branch_iterator_new)(out, repo, list_flags); }
int git_branch_next(git_reference **out, git_branch_t *out_type, git_branch_iterator *iter) { return BUS_LAZY_CALL(git_branch_next)(out, out_type, iter); }
int git_checkout_options_init(git_checkout_options *opts, unsigned int version) { return BUS_LAZY_CALL(git_checkout_options_init)(opts, version); }
int git_checkout_tree(git_repository *repo, const git_object *treeish, const git_checkout_options *opts) { return BUS_LAZY_CALL(git_checkout_tree)(repo, treeish, opts); }
void git_commit_free(git_commit *commit) { BUS_LAZY_CALL(git_commit_free)(commit); }
const git_oid * git_commit_id(const git_commit *commit) { return BUS_LAZY_CALL(git_commit_id)(commit); }
int git_commit_lookup(git_commit **commit, git_repository *repo, const git_oid *id) { return BUS_LAZY_CALL(git_commit_lookup)(commit, repo, id); }
git_time_t git_commit_time(const git_commit *commit) { return BUS_LAZY_CALL(git_commit_time)(commit); }
int git_commit_tree(git_tree **tree_out, const git_commit *commit) { return BUS_LAZY_CALL(git_commit_tree)(tree_out, commit); }
int git_credential_ssh_key_memory_new(git_credential **out, const char *username, const char *publickey, const char *privatekey, const char *passphrase) { return BUS_LAZY_CALL(git_credential_ssh_key_memory_new)(out, username, publickey, privatekey, passphrase); }
int git_credential_ssh_key_new(git_credential **out, const char *username, const char *publickey, const char *privatekey, const char *passphrase) { return BUS_LAZY_CALL(git_credential_ssh_key_new)(out, username, publickey, privatekey, passphrase); }
int git_credential_username_new(git_credential **out, const char *username) { return BUS_LAZY_CALL(git_credential_username_new)(out, username); }
int git_credential_userpass_plaintext_new(git_credential **out, const char *username, const char *password) { return BUS_LAZY_CALL(git_credential_userpass_plaintext_new)(out, username, password); }
const git_error * git_error_last() { return BUS_LAZY_CALL(git_error_last)(); }
int git_error_set_str(int error_class, const char *string) { return BUS_LAZY_CALL(git_error_set_str)(error_class, string); }
int git_fetch_options_init(git_fetch_options *opts, unsigned int version) { return BUS_LAZY_CALL(git_fetch_options_init)(opts, version); }
void git_index_free(git_index *index) { BUS_LAZY_CALL(git_index_free)(index); }
int git_index_new(git_index **out) { return BUS_LAZY_CALL(git_index_new)(out); }
int git_libgit2_init() { return BUS_LAZY_CALL(git_libgit2_init)(); }
int git_libgit2_shutdown() { return BUS_LAZY_CALL(git_libgit2_shutdown)(); }
void git_object_free(git_object *object) { BUS_LAZY_CALL(git_object_free)(object); }
const git_oid * git_object_id(const git_object *obj) { return BUS_LAZY_CALL(git_object_id)(obj); }
int git_object_lookup(git_object **object, git_repository *repo, const git_oid *id, git_object_t type) { return BUS_LAZY_CALL(git_object_lookup)(object, repo, id, type); }
int git_object_peel(git_object **peeled, const git_object *object, git_object_t target_type) { return BUS_LAZY_CALL(git_object_peel)(peeled, object, target_type); }
git_object_t git_object_type(const git_object *obj) { return BUS_LAZY_CALL(git_object_type)(obj); }
int git_oid_fromstr(git_oid *out, const char *str) { return BUS_LAZY_CALL(git_oid_fromstr)(out, str); }
char * git_oid_tostr(char *out, size_t n, const git_oid *id) { return BUS_LAZY_CALL(git_oid_tostr)(out, n, id); }
int git_reference_create(git_reference **out, git_repository *repo, const char *name, const git_oid *id, int force, const char *log_message) { return BUS_LAZY_CALL(git_reference_create)(out, repo, name, id, force, log_message); }
void git_reference_free(git_reference *ref) { BUS_LAZY_CALL(git_reference_free)(ref); }
void git_reference_iterator_free(git_reference_iterator *iter) { BUS_LAZY_CALL(git_reference_iterator_free)(iter); }
int git_reference_iterator_new(git_reference_iterator **out, git_repository *repo) { return BUS_LAZY_CALL(git_reference_iterator_new)(out, repo); }
int git_reference_lookup(git_reference **out, git_repository *repo, const char *name) { return BUS_LAZY_CALL(git_reference_lookup)(out, repo, name); }
const char * git_reference_name(const git_reference *ref) { return BUS_LAZY_CALL(git_reference_name)(ref); }
int git_reference_name_to_id(git_oid *out, git_repository *repo, const char *name) { return BUS_LAZY_CALL(git_reference_name_to_id)(out, repo, name); }
int git_reference_next(git_reference **out, git_reference_iterator *iter) { return BUS_LAZY_CALL(git_reference_next)(out, iter); }
const char * git_reference_symbolic_target(const git_reference *ref) { return BUS_LAZY_CALL(git_reference_symbolic_target)(ref); }
const git_oid * git_reference_target(const git_reference *ref) { return BUS_LAZY_CALL(git_reference_target)(ref); }
int git_remote_create(git_remote **out, git_repository *repo, const char *name, const char *url) { return BUS_LAZY_CALL(git_remote_create)(out, repo, name, url); }
int git_remote_fetch(git_remote *remote, const git_strarray *refspecs, const git_fetch_options *opts, const char *reflog_message) { return BUS_LAZY_CALL(git_remote_fetch)(remote, refspecs, opts, reflog_message); }
void git_remote_free(git_remote *remote) { BUS_LAZY_CALL(git_remote_free)(remote); }
int git_remote_lookup(git_remote **out, git_repository *repo, const char *name) { return BUS_LAZY_CALL(git_remote_lookup)(out, repo, name); }
const char * git_remote_url(const git_remote *remote) { return BUS_LAZY_CALL(git_remote_url)(remote); }
void git_repository_free(git_repository *repo) { BUS_LAZY_CALL(git_repository_free)(repo); }
int git_repository_init(git_repository **out, const char *path, unsigned is_bare) { return BUS_LAZY_CALL(git_repository_init)(out, path, is_bare); }
int git_repository_open(git_repository **out, const char *path) { return BUS_LAZY_CALL(git_repository_open)(out, path); }
int git_repository_open_bare(git_repository **out, const char *bare_path) { return BUS_LAZY_CALL(git_repository_open_bare)(out, bare_path); }
int git_repository_open_ext(git_repository **out, const char *path, unsigned int flags, const char *ceiling_dirs) { return BUS_LAZY_CALL(git_repository_open_ext)(out, path, flags, ceiling_dirs); }
int git_repository_set_head(git_repository *repo, const char *refname) { return BUS_LAZY_CALL(git_repository_set_head)(repo, refname); }
int git_reset(git_repository *repo, const git_object *target, git_reset_t reset_type, const git_checkout_options *checkout_opts) { return BUS_LAZY_CALL(git_reset)(repo, target, reset_type, checkout_opts); }
int git_revparse_single(git_object **out, git_repository *repo, const char *spec) { return BUS_LAZY_CALL(git_revparse_single)(out, repo, spec); }
const git_signature * git_tag_tagger(const git_tag *tag) { return BUS_LAZY_CALL(git_tag_tagger)(tag); }
void git_tree_free(git_tree *tree) { BUS_LAZY_CALL(git_tree_free)(tree); }

// The variadic one: forwarded for the options deploykit sets, each with the arguments
// git_libgit2_opts documents for it (include/git2/common.h); any other is refused with
// libgit2's own error rather than passed on with a guessed argument list.
int git_libgit2_opts(int option, ...)
{
    auto f = BUS_LAZY_CALL(git_libgit2_opts);
    va_list ap;
    va_start(ap, option);
    int rc;
    switch (option) {
    case GIT_OPT_SET_OWNER_VALIDATION:
        rc = f(option, va_arg(ap, int));
        break;
    case GIT_OPT_GET_OWNER_VALIDATION:
        rc = f(option, va_arg(ap, int*));
        break;
    case GIT_OPT_SET_SSL_CERT_LOCATIONS: {
        const char* file = va_arg(ap, const char*);
        const char* path = va_arg(ap, const char*);
        rc = f(option, file, path);
        break;
    }
    default:
        BUS_LAZY_CALL(git_error_set_str)(GIT_ERROR_INVALID, "git_libgit2_opts: option not forwarded by deploykit's libgit2 loader");
        rc = -1;
    }
    va_end(ap);
    return rc;
}

} // extern "C"
