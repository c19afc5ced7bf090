// libssl and libcrypto loaded at a program's first TLS call (bus/lazy_library.hpp) instead of
// at its start. Every OpenSSL function deploykit's TLS code calls (Asio's SSL streams and
// contexts, src/openssl/with.cpp, the HTTP server's and the broker's TLS listeners) is defined
// here with OpenSSL's own name and signature, taken from OpenSSL's declaration by the compiler
// (bus/detail/lazy_forward.hpp; a mismatch does not compile), and forwarded to libssl.so.3 through a table
// resolved once. dlsym on libssl's handle also finds libcrypto's functions (its dependency).
//
// Why: linked, libssl and libcrypto cost every daemon 1.7 MiB of RSS and 0.46 MiB of private
// relocated data at start (bench/results/perf-3-rss3.md), though most sites run them with plain
// stomp:// URLs and no TLS listener. A program with TLS configured creates its TLS context at
// start (the client's, the admin and broker listeners'), so a missing libssl still stops the
// start, naming the library. Nothing links -lssl or -lcrypto; OpenSSL stays the shared library
// Debian's security updates replace. These definitions are not exported (executables are linked
// without --export-dynamic), so libcurl and libgit2, which link libssl themselves, never reach
// them.
#include "bus/detail/lazy_forward.hpp"
#include "bus/lazy_library.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstddef>

namespace {

// X(function, number of parameters)
#define DK_SSL_FUNCTIONS(X) \
    X(BIO_ctrl, 4) \
    X(BIO_ctrl_pending, 1) \
    X(BIO_free, 1) \
    X(BIO_new_bio_pair, 4) \
    X(BIO_new_file, 2) \
    X(BIO_new_mem_buf, 2) \
    X(BIO_read, 3) \
    X(BIO_write, 3) \
    X(CRYPTO_free, 3) \
    X(ERR_clear_error, 0) \
    X(ERR_get_error, 0) \
    X(ERR_lib_error_string, 1) \
    X(ERR_peek_error, 0) \
    X(ERR_peek_last_error, 0) \
    X(ERR_reason_error_string, 1) \
    X(EVP_PKEY_free, 1) \
    X(EVP_PKEY_is_a, 2) \
    X(PEM_read_bio_Parameters, 2) \
    X(PEM_read_bio_PrivateKey, 4) \
    X(PEM_read_bio_X509, 4) \
    X(PEM_read_bio_X509_AUX, 4) \
    X(SSL_CTX_clear_options, 2) \
    X(SSL_CTX_ctrl, 4) \
    X(SSL_CTX_free, 1) \
    X(SSL_CTX_get_cert_store, 1) \
    X(SSL_CTX_get_default_passwd_cb, 1) \
    X(SSL_CTX_get_default_passwd_cb_userdata, 1) \
    X(SSL_CTX_get_ex_data, 2) \
    X(SSL_CTX_get_verify_callback, 1) \
    X(SSL_CTX_get_verify_mode, 1) \
    X(SSL_CTX_load_verify_locations, 3) \
    X(SSL_CTX_new, 1) \
    X(SSL_CTX_set0_tmp_dh_pkey, 2) \
    X(SSL_CTX_set_default_passwd_cb, 2) \
    X(SSL_CTX_set_default_passwd_cb_userdata, 2) \
    X(SSL_CTX_set_default_verify_paths, 1) \
    X(SSL_CTX_set_ex_data, 3) \
    X(SSL_CTX_set_options, 2) \
    X(SSL_CTX_set_verify, 3) \
    X(SSL_CTX_set_verify_depth, 2) \
    X(SSL_CTX_use_PrivateKey, 2) \
    X(SSL_CTX_use_PrivateKey_file, 3) \
    X(SSL_CTX_use_certificate, 2) \
    X(SSL_CTX_use_certificate_ASN1, 3) \
    X(SSL_CTX_use_certificate_chain_file, 2) \
    X(SSL_CTX_use_certificate_file, 3) \
    X(SSL_accept, 1) \
    X(SSL_connect, 1) \
    X(SSL_ctrl, 4) \
    X(SSL_free, 1) \
    X(SSL_get_SSL_CTX, 1) \
    X(SSL_get_error, 2) \
    X(SSL_get_ex_data, 2) \
    X(SSL_get_ex_data_X509_STORE_CTX_idx, 0) \
    X(SSL_get_shutdown, 1) \
    X(SSL_get_verify_callback, 1) \
    X(SSL_get_verify_mode, 1) \
    X(SSL_new, 1) \
    X(SSL_read, 3) \
    X(SSL_set_bio, 3) \
    X(SSL_set_ex_data, 3) \
    X(SSL_set_verify, 3) \
    X(SSL_set_verify_depth, 2) \
    X(SSL_shutdown, 1) \
    X(SSL_write, 3) \
    X(TLS_client_method, 0) \
    X(TLS_method, 0) \
    X(TLS_server_method, 0) \
    X(X509_STORE_CTX_get_current_cert, 1) \
    X(X509_STORE_CTX_get_error_depth, 1) \
    X(X509_STORE_CTX_get_ex_data, 2) \
    X(X509_STORE_add_cert, 2) \
    X(X509_check_host, 5) \
    X(X509_check_ip_asc, 3) \
    X(X509_free, 1) \
    X(d2i_PrivateKey_bio, 2) \

BUS_LAZY_TABLE(DK_SSL_FUNCTIONS, bus::libssl_library)

} // namespace

namespace bus {

lazy_library& libssl_library()
{
    static lazy_library lib(BUS_LIBSSL_SONAME, names);
    return lib;
}

} // namespace bus

extern "C" {
DK_SSL_FUNCTIONS(BUS_LAZY_FORWARD)
}
