#include "svn_hook.hpp"

#include <algorithm>

namespace svn_hook {

namespace {

// Ruby's String#strip: whitespace and NUL at both ends.
std::string_view strip(std::string_view s)
{
    constexpr std::string_view ws = " \t\n\v\f\r";
    while (!s.empty() && (ws.find(s.front()) != std::string_view::npos || s.front() == '\0')) s.remove_prefix(1);
    while (!s.empty() && (ws.find(s.back()) != std::string_view::npos || s.back() == '\0')) s.remove_suffix(1);
    return s;
}

// At most `n` bytes of `s`, not splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t n)
{
    if (s.size() <= n) return s;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

// Splits off the next '\n'-terminated line; nullopt if there is no complete line.
std::optional<std::string_view> next_line(std::string_view& in)
{
    auto nl = in.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    auto line = in.substr(0, nl);
    in.remove_prefix(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

std::vector<std::string_view> components(std::string_view dir)
{
    std::vector<std::string_view> out;
    while (!dir.empty()) {
        auto slash = dir.find('/');
        auto c = dir.substr(0, slash);
        if (!c.empty()) out.push_back(c);
        if (slash == std::string_view::npos) break;
        dir.remove_prefix(slash + 1);
    }
    return out;
}

} // namespace

std::string check_args(std::string_view repos, std::string_view rev)
{
    if (repos.empty() || repos.front() != '/')
        return "REPOS must be an absolute path, not '" + std::string(repos.substr(0, 200)) + "'";
    if (repos.size() > 4096) return "REPOS is too long";
    for (unsigned char c : repos)
        if (c < 0x20 || c == 0x7f) return "REPOS contains a control character";
    if (repo_name(repos).empty()) return "REPOS names no repository";
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (rev.empty() || rev.size() > 12 || !std::all_of(rev.begin(), rev.end(), digit))
        return "REV must be a revision number, not '" + std::string(rev.substr(0, 40)) + "'";
    return {};
}

std::string repo_name(std::string_view repos)
{
    while (repos.size() > 1 && repos.back() == '/') repos.remove_suffix(1);
    auto slash = repos.rfind('/');
    auto base = slash == std::string_view::npos ? repos : repos.substr(slash + 1);
    return std::string(base);
}

std::optional<revision_info> parse_info(std::string_view out)
{
    auto author = next_line(out);
    auto date = author ? next_line(out) : std::nullopt;
    auto size = date ? next_line(out) : std::nullopt;
    if (!size || size->empty() || !std::all_of(size->begin(), size->end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    revision_info info;
    info.author = std::string(utf8_prefix(strip(*author), max_line));
    info.date = std::string(utf8_prefix(strip(*date), max_line));
    // The log is the rest (svnlook adds a newline after it). The size line counts the log's bytes
    // in UTF-8, which is what svnlook prints only in a UTF-8 locale, so it is not relied on.
    auto log = strip(out);
    if (log.size() > max_log) {
        info.log = std::string(utf8_prefix(log, max_log)) + "\n[log message truncated by svn-stomp]";
        info.log_truncated = true;
    } else {
        info.log = std::string(log);
    }
    return info;
}

changed_dirs parse_dirs(std::string_view out)
{
    changed_dirs r;
    while (!out.empty()) {
        auto nl = out.find('\n');
        auto line = out.substr(0, nl);
        out = nl == std::string_view::npos ? std::string_view{} : out.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (line.size() > max_dir || r.dirs.size() >= max_dirs) {
            ++r.dropped;
            continue;
        }
        r.dirs.emplace_back(line);
    }
    return r;
}

std::string project_of_dir(std::string_view dir)
{
    // The original: the path part before /trunk; a directory without a trunk component has no
    // Project (the original produced a stray newline there, which consumers read as empty).
    auto c = components(dir);
    auto it = std::find(c.begin(), c.end(), std::string_view("trunk"));
    if (it == c.end() || it == c.begin()) return {};
    return std::string(*(it - 1));
}

std::string project_of(const std::vector<std::string>& dirs)
{
    // As the original: the last changed directory decides.
    return dirs.empty() ? std::string() : project_of_dir(dirs.back());
}

bus::commit_event make_commit(const std::string& repo, const std::string& rev, const revision_info& info,
                              std::vector<std::string> dirs)
{
    bus::commit_event c;
    c.source = bus::commit_source::svn;
    c.repo = repo;
    c.new_rev = rev;
    c.author = info.author;
    c.date = info.date;
    c.message = info.log;
    c.svn_project = project_of(dirs);
    c.changed_dirs = std::move(dirs);
    return c;
}

std::string report_line(const bus::commit_event& c)
{
    return "[" + c.repo + "] " + c.new_rev + " ";
}

std::string log_line(const bus::commit_event& c, std::string_view outcome)
{
    return "[" + c.repo + "] r" + c.new_rev + " " + std::string(outcome) + ": project '" + c.svn_project + "', " +
           std::to_string(c.changed_dirs.size()) + " dir(s)";
}

std::string sh_quote(std::string_view s)
{
    std::string out = "'";
    for (char ch : s) {
        if (ch == '\'') out += "'\\''";
        else out.push_back(ch);
    }
    out.push_back('\'');
    return out;
}

std::string hook_script(std::string_view self, std::string_view config)
{
    return "#!/bin/sh\nexec " + sh_quote(self) + " -c " + sh_quote(config) + " \"$@\"\n";
}

bool is_hook_script(std::string_view text)
{
    constexpr std::string_view head = "#!/bin/sh\nexec '";
    constexpr std::string_view tail = "' \"$@\"\n";
    if (!text.starts_with(head) || !text.ends_with(tail)) return false;
    auto exec_line = text.substr(10);
    if (exec_line.find('\n') != exec_line.size() - 1) return false;  // exactly two lines
    auto c = exec_line.find("' -c '");
    return c != std::string_view::npos && exec_line.substr(0, c).ends_with("svn-stomp");
}

} // namespace svn_hook
