// bus::lazy_library (libbus/include/bus/lazy_library.hpp): libraries loaded at their first use.
#include "curl_init.hpp"
#include "git_lazy.hpp"
#include "bus/lazy_library.hpp"

#include <curl/curl.h>
#include <git2.h>
#include <doctest/doctest.h>

#include <cmath>
#include <string>

using bus::lazy_library;
using bus::lazy_library_error;

namespace {
constexpr const char* missing_lib = "libdeploykit-not-installed.so.7";
constexpr const char* one_symbol[] = {"cos"};
constexpr const char* missing_symbol[] = {"cos", "deploykit_no_such_function"};
} // namespace

TEST_CASE("lazy_library - a missing soname is an error naming it and nothing crashes")
{
    lazy_library lib(missing_lib, one_symbol);
    std::string e = lib.load();
    CHECK(e.find(missing_lib) != std::string::npos);
    CHECK(e.starts_with("cannot load "));
    CHECK_FALSE(lib.loaded());
    CHECK(lib.load() == e);  // not remembered: tried again, same answer
    try {
        (void)lib.symbol(0);
        FAIL("symbol() of a library that cannot load must throw");
    } catch (const lazy_library_error& x) {
        CHECK(std::string(x.what()).find(missing_lib) != std::string::npos);
    }
    std::string p = lib.probe();
    CHECK(p.find(missing_lib) != std::string::npos);
}

TEST_CASE("lazy_library - a present soname resolves and a missing symbol names library and symbol")
{
    lazy_library lib("libm.so.6", one_symbol);
    CHECK(lib.probe().empty());
    CHECK_FALSE(lib.loaded());  // the probe loads it in a child, not here
    CHECK(lib.load().empty());
    CHECK(lib.loaded());
    auto cosine = reinterpret_cast<double (*)(double)>(lib.symbol(0));
    CHECK(cosine(0.0) == doctest::Approx(1.0));

    lazy_library partial("libm.so.6", missing_symbol);
    std::string e = partial.load();
    CHECK(e.find("libm.so.6") != std::string::npos);
    CHECK(e.find("deploykit_no_such_function") != std::string::npos);
    CHECK_FALSE(partial.loaded());
    CHECK(partial.probe() == e);
}

TEST_CASE("lazy_library - libcurl is loaded at the first call through its forwarding functions")
{
    CHECK(deploykit::curl_library_check().empty());
    CHECK(deploykit::curl_init_once().empty());
    CHECK(deploykit::libcurl_library().loaded());
    CURL* h = curl_easy_init();
    REQUIRE(h != nullptr);
    // one option of each argument type goes through the variadic forwarding as curl reads it
    CHECK(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK);                    // long
    CHECK(curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK);      // string
    CHECK(curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, curl_off_t{5}) == CURLE_OK); // curl_off_t
    CHECK(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK);
    CHECK(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "nonsense-protocol") == CURLE_UNSUPPORTED_PROTOCOL);
    CHECK(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, +[](char*, std::size_t s, std::size_t n, void*) { return s * n; }) ==
          CURLE_OK);  // function pointer
    long code = -1;
    CHECK(curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK);
    CHECK(code == 0);
    CHECK(std::string(curl_easy_strerror(CURLE_OK)) == "No error");
    curl_easy_cleanup(h);
}

TEST_CASE("lazy_library - libgit2 is loaded at the first call and its options are forwarded by type")
{
    CHECK(deploykit::libgit2_check().empty());
    REQUIRE(git_libgit2_init() > 0);
    CHECK(deploykit::libgit2_library().loaded());
    int owner_validation = -1;
    CHECK(git_libgit2_opts(GIT_OPT_GET_OWNER_VALIDATION, &owner_validation) == 0);
    CHECK((owner_validation == 0 || owner_validation == 1));
    CHECK(git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, owner_validation) == 0);
    // an option the loader does not know is refused with libgit2's error, not guessed at
    CHECK(git_libgit2_opts(GIT_OPT_ENABLE_CACHING, 1) == -1);
    const git_error* e = git_error_last();
    REQUIRE(e != nullptr);
    CHECK(std::string(e->message).find("not forwarded") != std::string::npos);
    git_libgit2_shutdown();
}
