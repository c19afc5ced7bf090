#include "post_receive.hpp"

#include <charconv>
#include <cstdint>
#include <ctime>

namespace hook {

parsed_input parse_updates(std::string_view in)
{
    parsed_input out;
    while (!in.empty()) {
        auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (line.empty()) continue;
        auto s1 = line.find(' ');
        auto s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
        if (s2 == std::string_view::npos) {
            out.rejected.push_back("malformed line '" + std::string(line.substr(0, 200)) + "'");
            continue;
        }
        ref_update u{std::string(line.substr(0, s1)), std::string(line.substr(s1 + 1, s2 - s1 - 1)),
                     std::string(line.substr(s2 + 1))};
        if (!bus::valid_revision(u.old_rev) || !bus::valid_revision(u.new_rev)) {
            out.rejected.push_back("invalid revision in '" + std::string(line.substr(0, 200)) + "'");
            continue;
        }
        if (!bus::valid_ref_name(u.ref)) {
            out.rejected.push_back("ref '" + u.ref.substr(0, 200) + "' refused (not a safe ref name)");
            continue;
        }
        out.updates.push_back(std::move(u));
    }
    return out;
}

std::optional<ref_update> post_commit_update(std::string_view ref, std::string_view head, std::string_view parent)
{
    if (!bus::valid_ref_name(ref) || !ref.starts_with("refs/")) return std::nullopt;
    if (!bus::valid_revision(head) || bus::is_zero_revision(head) || head.size() < 40) return std::nullopt;
    ref_update u{parent.empty() ? std::string(head.size(), '0') : std::string(parent), std::string(head),
                 std::string(ref)};
    if (!bus::valid_revision(u.old_rev) || u.old_rev.size() != u.new_rev.size()) return std::nullopt;
    return u;
}

std::string repo_name(std::string_view gl_repo, std::string_view git_dir)
{
    if (!gl_repo.empty()) return std::string(gl_repo);
    while (!git_dir.empty() && git_dir.back() == '/') git_dir.remove_suffix(1);
    if (git_dir.ends_with("/.git")) git_dir.remove_suffix(5);  // non-bare: the work tree's name
    auto slash = git_dir.rfind('/');
    std::string_view base = slash == std::string_view::npos ? git_dir : git_dir.substr(slash + 1);
    if (base.ends_with(".git")) base.remove_suffix(4);
    return std::string(base);
}

bus::commit_event make_commit(const std::string& repo, const ref_update& u, const commit_info& info)
{
    bus::commit_event c;
    c.source = bus::commit_source::git;
    c.repo = repo;
    c.ref = u.ref;
    c.old_rev = u.old_rev;
    c.new_rev = u.new_rev;
    c.author = utf8_prefix(info.author, max_field);
    c.date = utf8_prefix(info.date, max_field);
    c.message = info.message;
    while (!c.message.empty() && c.message.back() == '\n') c.message.pop_back();
    // Consumers drop events whose message exceeds 64 KiB: a long message is cut here, marked, so
    // the routing data (repo, ref, revisions) always arrives. As svn-stomp and github-webhook do.
    if (c.message.size() > max_message)
        c.message = utf8_prefix(c.message, max_message) + "\n" + std::string(truncation_marker);
    return c;
}

std::optional<loose_object> split_object(std::string_view inflated)
{
    auto nul = inflated.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    std::string_view head = inflated.substr(0, nul);
    auto sp = head.find(' ');
    if (sp == std::string_view::npos || sp == 0) return std::nullopt;
    std::size_t size = 0;
    std::string_view digits = head.substr(sp + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size);
    if (digits.empty() || ec != std::errc{} || p != digits.data() + digits.size()) return std::nullopt;
    std::string_view body = inflated.substr(nul + 1);
    if (body.size() != size) return std::nullopt;
    return loose_object{head.substr(0, sp), body};
}

namespace {

// The header lines of a commit or tag object (up to the blank line), continuation lines (a
// leading space: gpgsig, mergetag) skipped; `rest` gets what follows the blank line.
template <class F>
bool each_header(std::string_view body, std::string_view& rest, F f)
{
    while (!body.empty()) {
        auto nl = body.find('\n');
        if (nl == std::string_view::npos) {  // no message at all
            if (body.front() != ' ') f(body);
            rest = {};
            return true;
        }
        std::string_view line = body.substr(0, nl);
        body.remove_prefix(nl + 1);
        if (line.empty()) {
            rest = body;
            return true;
        }
        if (line.front() != ' ') f(line);
    }
    rest = {};
    return true;
}

bool hex40(std::string_view s)
{
    if (s.size() != 40) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

} // namespace

std::optional<commit_info> parse_commit_object(std::string_view body)
{
    std::string_view rest, author;
    bool tree = false;
    each_header(body, rest, [&](std::string_view line) {
        if (line.starts_with("tree ")) tree = true;
        else if (author.empty() && line.starts_with("author ")) author = line.substr(7);
    });
    if (!tree || author.empty()) return std::nullopt;
    // "Name <email> 1700000000 +0100"
    auto lt = author.find('<');
    auto gt = author.find('>', lt == std::string_view::npos ? 0 : lt);
    if (lt == std::string_view::npos || gt == std::string_view::npos) return std::nullopt;
    std::string_view name = author.substr(0, lt), email = author.substr(lt + 1, gt - lt - 1),
                     when = author.substr(gt + 1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!when.empty() && when.front() == ' ') when.remove_prefix(1);
    auto sp = when.find(' ');
    std::int64_t t = 0;
    int offset = 0;
    if (sp != std::string_view::npos && sp > 0) {
        auto [p, ec] = std::from_chars(when.data(), when.data() + sp, t);
        std::string_view tz = when.substr(sp + 1);
        int hhmm = 0;
        if (ec != std::errc{} || tz.size() != 5 || (tz[0] != '+' && tz[0] != '-') ||
            std::from_chars(tz.data() + 1, tz.data() + 5, hhmm).ec != std::errc{})
            return std::nullopt;
        offset = (hhmm / 100) * 60 + hhmm % 100;
        if (tz[0] == '-') offset = -offset;
    } else {
        return std::nullopt;
    }
    commit_info info;
    info.author = std::string(name) + " <" + std::string(email) + ">";
    info.date = git_date(t, offset);
    while (!rest.empty() && rest.front() == '\n') rest.remove_prefix(1);
    info.message = std::string(rest.substr(0, rest.find('\0')));  // libgit2's is a C string
    return info;
}

std::optional<std::string> tag_target(std::string_view body)
{
    std::string_view rest, object;
    each_header(body, rest, [&](std::string_view line) {
        if (object.empty() && line.starts_with("object ")) object = line.substr(7);
    });
    if (!hex40(object)) return std::nullopt;
    return std::string(object);
}

std::optional<std::string> first_parent(std::string_view body)
{
    std::string_view rest, parent;
    each_header(body, rest, [&](std::string_view line) {
        if (parent.empty() && line.starts_with("parent ")) parent = line.substr(7);
    });
    if (!hex40(parent)) return std::nullopt;
    return std::string(parent);
}

std::string utf8_prefix(std::string_view s, std::size_t max)
{
    if (s.size() <= max) return std::string(s);
    std::size_t n = max;
    // Back up over continuation bytes so no character is cut in half.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return std::string(s.substr(0, n));
}

std::string git_date(std::int64_t unix_time, int offset_minutes)
{
    std::time_t t = static_cast<std::time_t>(unix_time + offset_minutes * 60);
    std::tm tm{};
    gmtime_r(&t, &tm);
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int m = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    m %= 24 * 60;
    char buf[80];
    std::snprintf(buf, sizeof buf, "%s %s %d %02d:%02d:%02d %d %c%02d%02d", days[tm.tm_wday % 7], months[tm.tm_mon % 12],
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900, offset_minutes < 0 ? '-' : '+',
                  m / 60, m % 60);
    return buf;
}

std::string log_line(std::string_view repo, const std::vector<ref_update>& updates, std::string_view outcome)
{
    std::string s = "[" + std::string(repo) + "] " + std::string(outcome) + " " + std::to_string(updates.size()) +
                    " ref update(s)";
    constexpr std::size_t max_listed = 10;
    for (std::size_t i = 0; i < updates.size() && i < max_listed; ++i)
        s += (i == 0 ? ": " : ", ") + updates[i].ref + " " + updates[i].new_rev;
    if (updates.size() > max_listed) s += ", +" + std::to_string(updates.size() - max_listed) + " more";
    return s;
}

} // namespace hook
