// stomp-git's transport security logic, without sockets: known_hosts matching (plain, [host]:port,
// lists, wildcards, negation, hashed entries, markers), fingerprints, remote URLs, redaction, and
// the credentials file. Keys and hashed lines were made with OpenSSH's ssh-keygen.
#include "git_ops.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <map>

using namespace stomp_git;

namespace {

const std::string ed_b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIFahZw/iJTIE4z3kWa9k087GK4LMjWTDgIStpAl6WEd8";
const std::string ed2_b64 = "AAAAC3NzaC1lZDI1NTE5AAAAID9Kryy6kIFgctPlvW1Tg6RHX8E/6VDiq2HhqxNTYxPA";
const std::string ecdsa_b64 =
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFnkhvIygHPjUNIyH2rQzHSIrqZNWSTbQ7pKx87+oELNzmHB1x1xfCkL5Ab2"
    "B7WPK/SMAUPABY2XH1rydm/Nay8=";
const std::string rsa_b64 =
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDPyEqnFd00Ulo+U7e+qafgfQp8WSLEE1o2SzQn2P0FRGFT/u2ZuKbe36EiQzPsg5t0Y5eqAaVawm3Rg2tE"
    "oIyojv6foJCxuD3Zhl/xnzuknvA4m3IARGRBPqv07/k+5utRB36pRbotPihaYU1DEon0AftvknBzEzcmxQIB15jQzw==";
// ssh-keygen -H of "example.com <ed>" and "[git.example.com]:2222 <ecdsa>".
const std::string hashed_ed = "|1|+dE6gjn4CelcqrxpN42k2xY9dus=|Xf7jIpnX3eCcjjCWNohjQhYW/QM=";
const std::string hashed_ecdsa = "|1|H+hrwwmGhMo3sRETVfttS3Apuw4=|VPOafPK46sBVoLKxqzyQl7bJTuY=";

std::string blob(const std::string& b64)
{
    auto b = base64_decode(b64);
    REQUIRE(b);
    return *b;
}

host_key_status status(const std::string& text, std::string_view host, unsigned port, const std::string& key_b64)
{
    return check_known_hosts(text, "/etc/kh", host, port, blob(key_b64)).status;
}

} // namespace

TEST_CASE("stomp-git transport - key types and OpenSSH fingerprints")
{
    CHECK(ssh_key_type(blob(ed_b64)) == "ssh-ed25519");
    CHECK(ssh_key_type(blob(ecdsa_b64)) == "ecdsa-sha2-nistp256");
    CHECK(ssh_key_type(blob(rsa_b64)) == "ssh-rsa");
    CHECK(ssh_key_type("") == "");
    CHECK(ssh_key_type(std::string("\0\0\0\x50xx", 6)) == "");
    // As `ssh-keygen -lf -E sha256` prints them.
    CHECK(sha256_fingerprint(blob(ed_b64)) == "SHA256:9zUnvIdEi0AU+8cT4Ne2/zoy6dNEjFlu7csSiMAC4Us");
    CHECK(sha256_fingerprint(blob(ecdsa_b64)) == "SHA256:jH/oeIlPmE4u/sOPt6VScAhbJlyARq26/qoFTnrT0eQ");
    CHECK(sha256_fingerprint(blob(rsa_b64)) == "SHA256:/KzWgGJmUbHeukOaAAPutATB4kv4yRec1+RIOPOjoKk");
}

TEST_CASE("stomp-git transport - base64 is strict")
{
    CHECK(base64_decode("aGVsbG8=") == std::optional<std::string>("hello"));
    CHECK(base64_decode("aGVsbG8") == std::optional<std::string>("hello"));
    CHECK(base64_decode("") == std::optional<std::string>(""));
    CHECK(base64_decode("AAEC/w==") == std::optional<std::string>(std::string("\x00\x01\x02\xff", 4)));
    CHECK(base64_decode("AAEC/w") == std::optional<std::string>(std::string("\x00\x01\x02\xff", 4)));
    CHECK_FALSE(base64_decode(" aGVsbG8="));
    CHECK_FALSE(base64_decode("aGV*bG8="));
    CHECK_FALSE(base64_decode("a"));
}

TEST_CASE("stomp-git transport - known_hosts names and host patterns")
{
    CHECK(known_hosts_name("Example.COM", 22) == "example.com");
    CHECK(known_hosts_name("127.0.0.1", 2222) == "[127.0.0.1]:2222");
    CHECK(known_hosts_field_matches("example.com", "example.com"));
    CHECK(known_hosts_field_matches("EXAMPLE.com", "example.com"));
    CHECK(known_hosts_field_matches("other,example.com,1.2.3.4", "example.com"));
    CHECK_FALSE(known_hosts_field_matches("example.com", "[example.com]:2222"));  // port must match
    CHECK(known_hosts_field_matches("[example.com]:2222", "[example.com]:2222"));
    CHECK_FALSE(known_hosts_field_matches("[example.com]:2223", "[example.com]:2222"));
    CHECK(known_hosts_field_matches("*.example.com", "git.example.com"));
    CHECK(known_hosts_field_matches("git?.example.com", "git1.example.com"));
    CHECK_FALSE(known_hosts_field_matches("*.example.com", "example.org"));
    CHECK_FALSE(known_hosts_field_matches("*.example.com,!bad.example.com", "bad.example.com"));
    CHECK(known_hosts_field_matches("*.example.com,!bad.example.com", "good.example.com"));
    CHECK(known_hosts_field_matches(hashed_ed, "example.com"));
    CHECK(known_hosts_field_matches(hashed_ecdsa, "[git.example.com]:2222"));
    CHECK_FALSE(known_hosts_field_matches(hashed_ecdsa, "git.example.com"));
    CHECK_FALSE(known_hosts_field_matches(hashed_ed, "example.org"));
    CHECK_FALSE(known_hosts_field_matches("|1|garbage", "example.com"));
}

TEST_CASE("stomp-git transport - known_hosts match and refusals")
{
    const std::string kh = "# a comment\n\n"
                           "example.com ssh-ed25519 " + ed_b64 + " root@example\n"
                           "[git.example.com]:2222,10.0.0.9 ecdsa-sha2-nistp256 " + ecdsa_b64 + "\n"
                           "  rsa.example.com ssh-rsa " + rsa_b64 + "\n"
                           "broken.example.com ssh-ed25519 %%%notbase64\n";
    CHECK(status(kh, "example.com", 22, ed_b64) == host_key_status::match);
    CHECK(status(kh, "EXAMPLE.COM", 22, ed_b64) == host_key_status::match);
    CHECK(status(kh, "git.example.com", 2222, ecdsa_b64) == host_key_status::match);
    CHECK(status(kh, "10.0.0.9", 22, ecdsa_b64) == host_key_status::match);
    CHECK(status(kh, "rsa.example.com", 22, rsa_b64) == host_key_status::match);
    // Same host on another port is another host.
    CHECK(status(kh, "git.example.com", 22, ecdsa_b64) == host_key_status::unknown);
    CHECK(status(kh, "nowhere.example.com", 22, ed_b64) == host_key_status::unknown);
    CHECK(status(kh, "broken.example.com", 22, ed_b64) == host_key_status::unknown);
    CHECK(status("", "example.com", 22, ed_b64) == host_key_status::unknown);

    auto changed = check_known_hosts(kh, "/etc/kh", "example.com", 22, blob(ed2_b64));
    CHECK(changed.status == host_key_status::mismatch);
    CHECK(changed.message.find("REMOTE HOST IDENTIFICATION HAS CHANGED for example.com") != std::string::npos);
    CHECK(changed.message.find("/etc/kh:3") != std::string::npos);
    CHECK(changed.message.find("ssh-ed25519") != std::string::npos);
    CHECK(changed.message.find("SHA256:B1jF1JfZgKSrXK04ZdmpFd/6ZnILIhveVDHLURZaAZU") != std::string::npos);

    auto other = check_known_hosts(kh, "/etc/kh", "example.com", 22, blob(ecdsa_b64));
    CHECK(other.status == host_key_status::other_type);
    CHECK(other.message.find("only with ssh-ed25519") != std::string::npos);
    CHECK(other.message.find("offered ecdsa-sha2-nistp256 key SHA256:jH/oeIlPmE4u") != std::string::npos);

    auto unknown = check_known_hosts(kh, "/etc/kh", "127.0.0.1", 2200, blob(ed_b64));
    CHECK(unknown.status == host_key_status::unknown);
    CHECK(unknown.message.find("[127.0.0.1]:2200 is not in /etc/kh") != std::string::npos);
    CHECK(unknown.message.find("never trusts a host on first use") != std::string::npos);
    CHECK(unknown.message.find("ssh-keyscan -p 2200 127.0.0.1") != std::string::npos);
}

TEST_CASE("stomp-git transport - a matching line wins over an older key of the same type")
{
    const std::string kh = "example.com ssh-ed25519 " + ed2_b64 + "\nexample.com ssh-ed25519 " + ed_b64 + "\n";
    CHECK(status(kh, "example.com", 22, ed_b64) == host_key_status::match);
    CHECK(status(kh, "example.com", 22, ed2_b64) == host_key_status::match);
}

TEST_CASE("stomp-git transport - hashed known_hosts entries")
{
    const std::string kh = hashed_ed + " ssh-ed25519 " + ed_b64 + "\n" + hashed_ecdsa + " ecdsa-sha2-nistp256 " +
                           ecdsa_b64 + "\n";
    CHECK(status(kh, "example.com", 22, ed_b64) == host_key_status::match);
    CHECK(status(kh, "git.example.com", 2222, ecdsa_b64) == host_key_status::match);
    CHECK(status(kh, "example.com", 22, ed2_b64) == host_key_status::mismatch);
    CHECK(status(kh, "git.example.com", 22, ecdsa_b64) == host_key_status::unknown);
}

TEST_CASE("stomp-git transport - revoked and cert-authority markers")
{
    const std::string revoked = "example.com ssh-ed25519 " + ed_b64 + "\n@revoked * ssh-ed25519 " + ed_b64 + "\n";
    auto v = check_known_hosts(revoked, "/etc/kh", "example.com", 22, blob(ed_b64));
    CHECK(v.status == host_key_status::revoked);
    CHECK(v.message.find("/etc/kh:2 marks @revoked") != std::string::npos);
    // Revoking another key leaves this one alone.
    CHECK(status("example.com ssh-ed25519 " + ed_b64 + "\n@revoked * ssh-ed25519 " + ed2_b64 + "\n", "example.com", 22,
                 ed_b64) == host_key_status::match);

    auto ca = check_known_hosts("@cert-authority *.example.com ssh-ed25519 " + ed2_b64 + "\n", "/etc/kh",
                                "git.example.com", 22, blob(ed_b64));
    CHECK(ca.status == host_key_status::cert_authority_only);
    CHECK(ca.message.find("cannot check host certificates") != std::string::npos);
    CHECK(status("@weird example.com ssh-ed25519 " + ed_b64 + "\n", "example.com", 22, ed_b64) ==
          host_key_status::unknown);
}

TEST_CASE("stomp-git transport - the lines libssh2 is given for one host")
{
    const std::string kh = "# c\n" + hashed_ecdsa + " ecdsa-sha2-nistp256 " + ecdsa_b64 + "\n" +
                           "@revoked * ssh-ed25519 " + ed2_b64 + "\n" + "@cert-authority * ssh-ed25519 " + ed2_b64 +
                           "\n" + "[git.example.com]:2222,other ssh-ed25519 " + ed_b64 + " comment\n" +
                           "git.example.com ssh-rsa " + rsa_b64 + "\n" + "[git.example.com]:2222 ssh-rsa %%%\n";
    CHECK(known_hosts_for(kh, "git.example.com", 2222) ==
          "[git.example.com]:2222 ecdsa-sha2-nistp256 " + ecdsa_b64 + "\n[git.example.com]:2222 ssh-ed25519 " + ed_b64 +
              "\n");
    CHECK(known_hosts_for(kh, "git.example.com", 22) == "git.example.com ssh-rsa " + rsa_b64 + "\n");
    CHECK(known_hosts_for(kh, "elsewhere", 22).empty());
}

TEST_CASE("stomp-git transport - remote URLs")
{
    auto u = parse_remote_url("ssh://git@127.0.0.1:2222/srv/git/site.git");
    REQUIRE(u);
    CHECK(u->scheme == "ssh");
    CHECK(u->user == "git");
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 2222);
    u = parse_remote_url("git@Git.Example.com:site.git");
    REQUIRE(u);
    CHECK(u->scheme == "ssh");
    CHECK(u->host == "git.example.com");
    CHECK(u->port == 22);
    u = parse_remote_url("https://alice:s3cret@example.com/site.git");
    REQUIRE(u);
    CHECK(u->port == 443);
    CHECK(u->user == "alice");
    u = parse_remote_url("ssh://[::1]:2200/x");
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->port == 2200);
    CHECK_FALSE(parse_remote_url("/srv/git/site.git"));
    CHECK_FALSE(parse_remote_url("./a:b"));
    CHECK_FALSE(parse_remote_url("file:///srv/git/site.git"));
    CHECK_FALSE(parse_remote_url("https://example.com:99999/x"));
}

TEST_CASE("stomp-git transport - redaction of URL userinfo and secrets")
{
    CHECK(redact("fetching from https://alice:s3cret@example.com/site.git: 401") ==
          "fetching from https://example.com/site.git: 401");
    CHECK(redact("https://TOKEN@example.com/x and http://u:p@h:8080") == "https://example.com/x and http://h:8080");
    CHECK(redact("ssh://git@example.com:22/x") == "ssh://git@example.com:22/x");  // a user name is no secret
    CHECK(redact("ssh://git:pw@example.com/x") == "ssh://example.com/x");
    CHECK(redact("'https://a:b@h/x' then no url: a@b") == "'https://h/x' then no url: a@b");
    CHECK(redact("token tok123 in tok123", {"tok123", ""}) == "token *** in ***");
    CHECK(redact("nothing here://") == "nothing here://");
}

TEST_CASE("stomp-git transport - credentials file formats")
{
    auto one = parse_credentials("deploy:tok-1\n", "/etc/creds");
    REQUIRE(one.size() == 1);
    CHECK(one[0].host.empty());
    CHECK(one[0].user == "deploy");
    CHECK(one[0].token == "tok-1");
    CHECK(parse_credentials("deploy:a:b", "/etc/creds")[0].token == "a:b");  // split at the first ':'

    auto many = parse_credentials("# per host\nhttps://alice:t%40k@git.example.com\n"
                                  "https://bob:tok2@GIT.example.com:8443/ignored/path\n\ndefault:tok3\r\n",
                                  "/etc/creds");
    REQUIRE(many.size() == 3);
    CHECK(many[0].token == "t@k");
    CHECK(many[1].host == "git.example.com");
    CHECK(many[1].port == 8443);
    CHECK(find_credential(many, "git.example.com", 8443)->user == "bob");
    CHECK(find_credential(many, "Git.Example.com", 443)->user == "alice");
    CHECK(find_credential(many, "other.example.com", 443)->user == "default");
    CHECK(find_credential(parse_credentials("https://a:b@h\n", "f"), "x", 443) == nullptr);

    auto refused = [](std::string text) {
        try {
            parse_credentials(text, "/etc/creds");
        } catch (const std::runtime_error& e) {
            std::string m = e.what();
            CHECK(m.find("SECRET") == std::string::npos);  // never the token
            return m;
        }
        return std::string("accepted");
    };
    CHECK(refused("SECRET\n").find("/etc/creds:1: expected user:token") == 0);
    CHECK(refused("a:SECRET\nb:SECRET\n").find("/etc/creds:2: a second user:token line") == 0);
    CHECK(refused("ftp://a:SECRET@h\n").find("/etc/creds:1: expected https://") == 0);
    CHECK(refused("http://a:SECRET@h\n").find("/etc/creds:1: expected https://") == 0);  // never in clear text
    CHECK(refused("https://SECRET@h\n").find("/etc/creds:1: expected https://") == 0);
    CHECK(refused("user:\n").find("/etc/creds:1: the token is empty") == 0);
    CHECK(refused("# only a comment\n").find("no credentials") != std::string::npos);
}

TEST_CASE("stomp-git transport - secret files must be private")
{
    const unsigned reg = S_IFREG;
    CHECK(secret_file_problem("/etc/c", reg | 0600, 0, 0, true).empty());
    CHECK(secret_file_problem("/etc/c", reg | 0400, 1000, 1000, true).empty());
    CHECK(secret_file_problem("/etc/c", reg | 0644, 0, 0, true) ==
          "/etc/c is accessible to group or others (mode 0644); it must be 0600: chmod 600 /etc/c");
    CHECK(secret_file_problem("/etc/c", reg | 0640, 0, 0, true).find("mode 0640") != std::string::npos);
    CHECK(secret_file_problem("/etc/c", reg | 0600, 1001, 0, true).find("belongs to uid 1001") != std::string::npos);
    CHECK(secret_file_problem("/etc/c", reg | 0600, 1001, 0, false).empty());  // ssh keys: mode only
    CHECK(secret_file_problem("/etc/c", S_IFDIR | 0700, 0, 0, true) == "/etc/c is not a regular file");
}

// ---- puppetmaster environment names (issue 10 item 1) and configs -------------------------------

TEST_CASE("stomp-git - environment names keep case and map only what a directory cannot hold")
{
    CHECK(environment_name("production") == "production");
    CHECK(environment_name("Production") == "Production");
    CHECK(environment_name("feature/x-1") == "feature_x_1");
    CHECK(environment_name("release.2") == "release_2");
}

TEST_CASE("stomp-git - branches that would share an environment are all refused")
{
    auto plan = plan_environments({"production", "Production", "PRODUCTION", "feature/x", "feature-x", "feature_y"});
    std::map<std::string, std::string> published(plan.publish.begin(), plan.publish.end());
    CHECK(published == std::map<std::string, std::string>{{"production", "production"},
                                                          {"Production", "Production"},
                                                          {"PRODUCTION", "PRODUCTION"},
                                                          {"feature_y", "feature_y"}});
    REQUIRE(plan.refused.size() == 2);
    for (const auto& r : plan.refused) {
        CHECK(r.environment == "feature_x");
        CHECK(r.reason.find("'feature/x', 'feature-x'") != std::string::npos);
    }
}

TEST_CASE("stomp-git - an environment name too long for a directory is refused alone")
{
    std::string long_name(300, 'a');
    auto plan = plan_environments({"master", long_name, std::string(240, 'b')});
    CHECK(plan.publish.size() == 2);
    REQUIRE(plan.refused.size() == 1);
    CHECK(plan.refused[0].branch == long_name);
}

namespace {

std::string write_config(const std::string& text)
{
    char name[] = "/tmp/stomp-git-config.XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
    return name;
}

} // namespace

TEST_CASE("stomp-git config - the original v1 file with top-level name: path entries")
{
    // What the original's Puppet define appended: no repo-list, one `name: path` line per site.
    auto file = write_config("rserver: stomp://127.0.0.1:61613\nlisten-topic: future.git.commits\n"
                             "report-topic: future.events.stomp-git\nwww.example.com: /data/repos/www\n"
                             "blog: /data/repos/blog\n");
    auto c = load_config(file);
    ::unlink(file.c_str());
    REQUIRE(c.repos.size() == 2);
    CHECK(c.repos.at("www.example.com").path == "/data/repos/www");
    CHECK(c.repos.at("blog").how == mode::normal);
    CHECK(c.listen_topic == "future.git.commits");
}

TEST_CASE("stomp-git config - a bad number names file line key and the type expected")
{
    auto file = write_config("rserver: stomp://127.0.0.1:61613\nrepo-list:\n"
                             "  site: {repo: /r, target: /t, mode: atomic, keep: abc}\n");
    std::string what;
    try {
        load_config(file);
    } catch (const bus::config_error& e) {
        what = e.what();
    }
    ::unlink(file.c_str());
    CHECK(what == file + ":3: repo-list.site.keep: expected a whole number, not 'abc'");
}

TEST_CASE("stomp-git config - durable by default and a relative post-fetch-command refused")
{
    auto file = write_config("rserver: stomp://127.0.0.1:61613\n");
    auto c = load_config(file);
    CHECK(c.durable_name.starts_with("stomp-git-"));
    CHECK(c.bus.client.client_id == c.durable_name);
    ::unlink(file.c_str());
    file = write_config("rserver: stomp://127.0.0.1:61613\npost-fetch-command: [reload]\n");
    CHECK_THROWS_AS(load_config(file), bus::config_error);
    ::unlink(file.c_str());
}

TEST_CASE("stomp-git config - a typo is an unknown setting naming the nearest key")
{
    // The case: `repo-lst:` used to start stomp-git with no repositories, silently.
    auto file = write_config("rserver: stomp://127.0.0.1:61613\nrepo-lst:\n  site: {repo: /r}\n");
    std::string what;
    try {
        load_config(file);
    } catch (const bus::config_error& e) {
        what = e.what();
    }
    ::unlink(file.c_str());
    CHECK(what == file + ":2: repo-lst: unknown setting; did you mean `repo-list`?");
    // A misspelt path setting is not taken for a v1 `name: /path` repository.
    file = write_config("rserver: stomp://127.0.0.1:61613\nreplay-cahce: /var/lib/stomp-git/replay-cache\n");
    what.clear();
    try {
        load_config(file);
    } catch (const bus::config_error& e) {
        what = e.what();
    }
    ::unlink(file.c_str());
    CHECK(what.starts_with(file + ":2: replay-cahce: unknown setting; did you mean `replay-cache`?"));
}

TEST_CASE("stomp-git config - admin-listen heartbeat and replay-cache")
{
    auto file = write_config("rserver: stomp://127.0.0.1:61613\nadmin-listen: 127.0.0.1:9188\n"
                             "heartbeat-interval: 30s\nheartbeat-topic: dk.hb\nreplay-cache: /var/lib/stomp-git/replay-cache\n");
    auto c = load_config(file);
    ::unlink(file.c_str());
    REQUIRE(c.admin_listen);
    CHECK(c.heartbeat.interval == std::chrono::seconds(30));
    CHECK(c.heartbeat.topic == "dk.hb");
    CHECK(c.replay_cache == "/var/lib/stomp-git/replay-cache");
    file = write_config("rserver: stomp://127.0.0.1:61613\nreplay-cache: relative/cache\n");
    CHECK_THROWS_AS(load_config(file), bus::config_error);
    ::unlink(file.c_str());
}

TEST_CASE("stomp-git config - a reload names rserver as needing a restart and not the repositories")
{
    auto a = write_config("rserver: stomp://127.0.0.1:61613\nrepo-list:\n  site: {repo: /r}\nold: /data/old\n");
    auto b = write_config("rserver: stomp://127.0.0.1:61614\nrepo-list:\n  site: {repo: /s}\n");
    auto running = load_config(a);
    auto fresh = load_config(b);
    ::unlink(a.c_str());
    ::unlink(b.c_str());
    CHECK(needs_restart(running, fresh) == std::vector<std::string>{"rserver"});
}
