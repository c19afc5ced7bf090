#include "bus/legacy.hpp"

#include "bus/text.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <vector>

namespace bus::legacy {

namespace {

std::string_view strip(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> lines_of(std::string_view s)
{
    std::vector<std::string_view> out;
    while (!s.empty()) {
        auto nl = s.find('\n');
        out.push_back(s.substr(0, nl));
        if (nl == std::string_view::npos) break;
        s.remove_prefix(nl + 1);
    }
    return out;
}

std::string trim_trailing_newlines(std::string_view s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    return std::string(s);
}

// A field the legacy grammar keeps on one line (author, date, project, URL): a newline there
// would start a new `key:` line in the header block.
std::string one_line(std::string_view s) { return strip_control(s, false); }

// Keys that the original consumers' parsers (stomp-git: `repo`; stomp-jenkins: `repo`, `Project`,
// `refname`; a stomp-repo: `package`) or ours read from a legacy body, in any case. The original
// split *every* line of the body at its first ':' with the key exact and untrimmed, the last
// occurrence winning, and crashed on a matching key without ':'.
constexpr std::string_view field_keys[] = {"repo",   "oldrev", "newrev",  "refname", "revname", "author", "date",
                                           "project", "dirs",  "package", "url",     "status"};

bool iequals(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
           });
}

// A line that is, or with leading spaces removed would be, a `key:` line of the grammar.
bool looks_like_field(std::string_view line) noexcept
{
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    std::string_view key = line.substr(0, line.find(':'));
    return std::any_of(std::begin(field_keys), std::end(field_keys), [&](std::string_view k) { return iequals(k, key); });
}

// Free text (commit messages, changed dirs, reprepro output) in a legacy body: a line that looks
// like a field gets one more leading space, which no parser reads as that key (keys are exact
// and untrimmed, and indented lines are text). Lines that already start with spaces are indented
// too, so `unneutralise` can undo it exactly.
std::string neutralise(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (;;) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        if (looks_like_field(line)) out.push_back(' ');
        out.append(line);
        if (nl == std::string_view::npos) break;
        out.push_back('\n');
        text.remove_prefix(nl + 1);
    }
    return out;
}

std::string unneutralise(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (;;) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        if (line.starts_with(' ') && looks_like_field(line)) line.remove_prefix(1);
        out.append(line);
        if (nl == std::string_view::npos) break;
        out.push_back('\n');
        text.remove_prefix(nl + 1);
    }
    return out;
}

// `key: value` lines of the header block: key exact and untrimmed, value stripped, FIRST wins.
struct header_block {
    std::map<std::string, std::string, std::less<>> keys;
    std::vector<std::string_view> lines;  // the block's lines
    std::size_t end_line = 0;             // index of the first line after the blank line

    const std::string* find(std::string_view k) const
    {
        auto it = keys.find(k);
        return it == keys.end() ? nullptr : &it->second;
    }
};

header_block read_block(const std::vector<std::string_view>& lines)
{
    header_block b;
    std::size_t i = 0;
    for (; i < lines.size(); ++i) {
        if (strip(lines[i]).empty()) {
            ++i;
            break;
        }
        b.lines.push_back(lines[i]);
        auto colon = lines[i].find(':');
        if (colon == std::string_view::npos) continue;  // the original crashed here; we skip
        std::string key(lines[i].substr(0, colon));
        b.keys.emplace(std::move(key), std::string(strip(lines[i].substr(colon + 1))));
    }
    b.end_line = i;
    return b;
}

std::string join_from(const std::vector<std::string_view>& lines, std::size_t from)
{
    std::string out;
    for (std::size_t i = from; i < lines.size(); ++i) {
        if (i > from) out.push_back('\n');
        out.append(lines[i]);
    }
    return trim_trailing_newlines(out);
}

std::string branch_head(std::string_view branch)
{
    auto slash = branch.find('/');
    return std::string(branch.substr(0, slash));
}

bool deb_name_char(char c, bool version)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-') return true;
    return version && ((c >= 'A' && c <= 'Z') || c == '~' || c == ':');
}

} // namespace

std::optional<subject_parts> parse_subject(std::string_view subject)
{
    if (subject.empty() || subject.front() != '[') return std::nullopt;
    auto close = subject.find("] ");
    if (close == std::string_view::npos) return std::nullopt;
    subject_parts p;
    p.repo = std::string(subject.substr(1, close - 1));
    std::string_view rest = subject.substr(close + 2);
    auto sp = rest.find(' ');
    p.first = std::string(rest.substr(0, sp));
    if (sp != std::string_view::npos) p.second = std::string(strip(rest.substr(sp + 1)));
    if (p.repo.empty() || p.first.empty()) return std::nullopt;
    return p;
}

message git_hook_commit(const commit_event& c)
{
    message m;
    m.subject = "[" + c.repo + "] " + c.ref + " " + c.new_rev;
    m.body = "repo: " + c.repo + "\noldrev: " + c.old_rev + "\nnewrev: " + c.new_rev + "\nrefname: " + c.ref +
             "\n " + c.new_rev + "\nAuthor: " + one_line(c.author) + "\nDate: " + one_line(c.date) + "\n\n" +
             neutralise(c.message) + "\n\n";
    return m;
}

message svn_hook_commit(const commit_event& c)
{
    message m;
    m.subject = "[" + c.repo + "] " + c.new_rev + " ";
    std::string dirs;
    for (std::size_t i = 0; i < c.changed_dirs.size(); ++i) {
        if (i) dirs.push_back('\n');
        dirs += neutralise(one_line(c.changed_dirs[i]));
    }
    m.body = "repo: " + c.repo + "\nrevname: " + c.new_rev + "\n Author: " + one_line(c.author) +
             "\nDate: " + one_line(c.date) + "\nProject: " + one_line(c.svn_project) + "\n\nDirs:\n" + dirs + "\n\n" +
             neutralise(c.message) + "\n\n";
    return m;
}

message github_stomp_commit(const commit_event& c)
{
    message m;
    m.subject = "[" + c.repo + "] " + c.ref + " " + c.new_rev;
    m.body = "repo: " + c.repo + "\noldrev: " + c.old_rev + "\nnewrev: " + c.new_rev + "\nrefname: " + c.ref + "\n";
    if (!is_zero_revision(c.new_rev))
        m.body += " commit " + c.new_rev + "\nAuthor: " + one_line(c.author) + "\nDate: " + one_line(c.date) + "\n\t" +
                  neutralise(c.message) + "\n\n";
    return m;
}

message commit_message(const commit_event& c)
{
    switch (c.source) {
    case commit_source::git: return git_hook_commit(c);
    case commit_source::svn: return svn_hook_commit(c);
    default: return github_stomp_commit(c);
    }
}

message jenkins_helper(const build_event& b)
{
    const char* verb = "Begin";
    const char* status = "Start job";
    if (b.phase == build_phase::completed) {
        bool ok = b.status == "SUCCESS";
        verb = ok ? "Complete" : "Fail";
        status = ok ? "Success" : "Cake";
    }
    message m;
    m.subject = std::string(verb) + " job " + std::to_string(b.number) + " - [" + one_line(b.job) + "] " +
                one_line(b.branch) + " " + one_line(b.commit);
    m.body = "Repo: " + one_line(branch_head(b.branch)) + "\nURL: " + one_line(b.url) + "\nStatus: " + status + "\n";
    return m;
}

message auto_reprepro(const package_event& p, std::string_view status)
{
    message m;
    m.subject = "Package update: [" + one_line(p.file) + "]";
    // The original joined these with a literal backslash-n (bug 16); real newlines here.
    m.body = "package: " + one_line(p.file) + "\n";
    if (!status.empty()) m.body += neutralise(strip_control(status, true)) + "\n";
    return m;
}

message notice(std::string_view text)
{
    return {std::string(eventbot_subject), one_line(text)};
}

decoded<commit_event> parse_commit(std::string_view subject, std::string_view body)
{
    decoded<commit_event> out;
    auto lines = lines_of(body);
    auto block = read_block(lines);
    const std::string* repo = block.find("repo");
    if (!repo || repo->empty()) {
        out.error = "no repo: line";
        return out;
    }
    commit_event c;
    c.repo = *repo;
    if (const auto* rev = block.find("revname")) {
        c.source = commit_source::svn;
        c.new_rev = *rev;
        if (const auto* a = block.find(" Author")) c.author = *a;
        if (const auto* d = block.find("Date")) c.date = *d;
        if (const auto* p = block.find("Project")) c.svn_project = *p;
        std::size_t i = block.end_line;
        if (i < lines.size() && strip(lines[i]) == "Dirs:") {
            for (++i; i < lines.size() && !strip(lines[i]).empty(); ++i) c.changed_dirs.push_back(unneutralise(lines[i]));
            if (i < lines.size()) ++i;
        }
        c.message = unneutralise(join_from(lines, i));
    } else {
        const std::string* newrev = block.find("newrev");
        const std::string* refname = block.find("refname");
        if (!newrev || !refname) {
            out.error = "commit message without newrev: or refname:";
            return out;
        }
        c.new_rev = *newrev;
        c.ref = *refname;
        if (const auto* o = block.find("oldrev")) c.old_rev = *o;
        if (const auto* a = block.find("Author")) c.author = *a;
        if (const auto* d = block.find("Date")) c.date = *d;
        bool github = std::any_of(block.lines.begin(), block.lines.end(),
                                  [](std::string_view l) { return l.starts_with(" commit "); });
        if (github) {
            c.source = commit_source::github;
            // The first commit's message: the line starting with a tab and those after it.
            std::string msg;
            bool in_msg = false;
            for (auto l : block.lines) {
                if (!in_msg && l.starts_with("\t")) {
                    in_msg = true;
                    msg.append(l.substr(1));
                } else if (in_msg) {
                    msg.push_back('\n');
                    msg.append(l);
                }
            }
            c.message = unneutralise(trim_trailing_newlines(msg));
        } else {
            c.source = commit_source::git;
            c.message = unneutralise(join_from(lines, block.end_line));
        }
    }
    if (auto s = parse_subject(subject)) {
        bool agrees = s->repo == c.repo;
        if (c.source == commit_source::svn) agrees = agrees && s->first == c.new_rev;
        else agrees = agrees && s->first == c.ref && (s->second.empty() || s->second == c.new_rev);
        if (!agrees) {
            out.error = "subject '" + std::string(subject.substr(0, 200)) + "' disagrees with the body";
            return out;
        }
    }
    event probe{"legacy", "", "", c};
    if (auto why = validate(probe); !why.empty()) {
        out.error = why;
        return out;
    }
    out.value = std::move(c);
    return out;
}

decoded<build_event> parse_jenkins(std::string_view subject, std::string_view body)
{
    decoded<build_event> out;
    build_event b;
    auto sp = subject.find(' ');
    std::string_view verb = subject.substr(0, sp);
    if (verb == "Begin") b.phase = build_phase::started;
    else if (verb == "Complete") {
        b.phase = build_phase::completed;
        b.status = "SUCCESS";
    } else if (verb == "Fail") {
        b.phase = build_phase::completed;
        b.status = "FAILURE";
    } else {
        out.error = "subject does not start with Begin, Complete or Fail";
        return out;
    }
    std::string_view rest = sp == std::string_view::npos ? std::string_view{} : subject.substr(sp + 1);
    if (!rest.starts_with("job ")) {
        out.error = "subject has no 'job N'";
        return out;
    }
    rest.remove_prefix(4);
    auto dash = rest.find(" - [");
    auto close = rest.rfind("] ");
    if (dash == std::string_view::npos || close == std::string_view::npos || close < dash + 4) {
        out.error = "subject has no '- [JOB]'";
        return out;
    }
    std::string_view num = rest.substr(0, dash);
    auto r = std::from_chars(num.data(), num.data() + num.size(), b.number);
    if (r.ec != std::errc{} || r.ptr != num.data() + num.size() || b.number < 0) {
        out.error = "build number is not a number";
        return out;
    }
    b.job = std::string(rest.substr(dash + 4, close - dash - 4));
    std::string_view tail = rest.substr(close + 2);
    auto sp2 = tail.find(' ');
    b.branch = std::string(tail.substr(0, sp2));
    if (sp2 != std::string_view::npos) b.commit = std::string(strip(tail.substr(sp2 + 1)));
    auto block = read_block(lines_of(body));
    if (const auto* u = block.find("URL")) b.url = *u;
    if (const auto* s = block.find("Status")) {
        if (*s == "Cake" && b.status != "FAILURE") {
            out.error = "Status: Cake disagrees with the subject";
            return out;
        }
    }
    b.repo = branch_head(b.branch);
    if (b.job.empty()) {
        out.error = "empty job name";
        return out;
    }
    out.value = std::move(b);
    return out;
}

decoded<package_event> parse_package(std::string_view body)
{
    decoded<package_event> out;
    auto block = read_block(lines_of(body));
    const std::string* file = block.find("package");
    if (!file || file->empty()) {
        out.error = "no package: line";
        return out;
    }
    std::string_view f = *file;
    if (auto slash = f.rfind('/'); slash != std::string_view::npos) f.remove_prefix(slash + 1);
    if (!f.ends_with(".deb") && !f.ends_with(".udeb")) {
        out.error = "package: '" + std::string(f.substr(0, 200)) + "' is not a .deb file name";
        return out;
    }
    f.remove_suffix(f.ends_with(".deb") ? 4 : 5);
    auto u1 = f.find('_');
    auto u2 = u1 == std::string_view::npos ? u1 : f.find('_', u1 + 1);
    if (u2 == std::string_view::npos || f.find('_', u2 + 1) != std::string_view::npos) {
        out.error = "package: file name is not name_version_arch.deb";
        return out;
    }
    package_event p;
    p.file = *file;
    p.name = std::string(f.substr(0, u1));
    p.new_version = std::string(f.substr(u1 + 1, u2 - u1 - 1));
    p.architecture = std::string(f.substr(u2 + 1));
    auto ok = [](std::string_view s, bool version) {
        return !s.empty() && s.size() <= 255 &&
               std::all_of(s.begin(), s.end(), [&](char c) { return deb_name_char(c, version); });
    };
    if (!ok(p.name, false) || !ok(p.new_version, true) || !ok(p.architecture, false)) {
        out.error = "package: invalid characters in name, version or architecture";
        return out;
    }
    out.value = std::move(p);
    return out;
}

} // namespace bus::legacy
