#include "refs.hpp"

#include <fnmatch.h>

#include <algorithm>

namespace deploykit::refs {

bool glob_match(std::string_view pattern, std::string_view name)
{
    return ::fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), 0) == 0;
}

std::string translate_ruby_anchors(std::string_view re)
{
    std::string out;
    out.reserve(re.size());
    for (std::size_t i = 0; i < re.size(); ++i) {
        if (re[i] == '\\' && i + 1 < re.size()) {
            char n = re[i + 1];
            if (n == 'A') out += '^';
            else if (n == 'z' || n == 'Z') out += '$';
            else {
                out += re[i];
                out += n;
            }
            ++i;
            continue;
        }
        out += re[i];
    }
    return out;
}

std::shared_ptr<const std::regex> compile_ignore_refs(std::string_view re)
{
    return std::make_shared<const std::regex>(translate_ruby_anchors(re), std::regex::ECMAScript);
}

std::string rejects(const filter& f, std::string_view ref)
{
    const std::string r(ref);
    if (f.ignore && std::regex_search(r, *f.ignore)) return r + " matches ignore_refs";
    auto any = [](const std::vector<std::string>& globs, std::string_view name) {
        return std::any_of(globs.begin(), globs.end(), [&](const std::string& p) { return glob_match(p, name); });
    };
    if (ref.starts_with("refs/heads/")) {
        auto b = ref.substr(11);
        if (f.branches.empty() && f.tags.empty()) return {};
        if (any(f.branches, b)) return {};
        return "branch " + std::string(b) + " is not in branches";
    }
    if (ref.starts_with("refs/tags/")) {
        auto t = ref.substr(10);
        if (any(f.tags, t)) return {};
        return "tag " + std::string(t) + " is not in tags";
    }
    return r + " is neither a branch nor a tag";
}

} // namespace deploykit::refs
