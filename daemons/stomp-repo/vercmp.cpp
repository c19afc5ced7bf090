#include "vercmp.hpp"

#include <apt-pkg/debversion.h>

#include <algorithm>
#include <numeric>

namespace stomp_repo {

int apt_compare_versions(std::string_view a, std::string_view b)
{
    int r = debVS.DoCmpVersion(a.data(), a.data() + a.size(), b.data(), b.data() + b.size());
    return r < 0 ? -1 : r > 0 ? 1 : 0;
}

std::vector<unsigned> apt_version_ranks(const std::vector<std::string>& versions)
{
    std::vector<std::size_t> idx(versions.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(),
                     [&](std::size_t x, std::size_t y) { return apt_compare_versions(versions[x], versions[y]) < 0; });
    std::vector<unsigned> rank(versions.size(), 0);
    unsigned r = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) {
        if (k > 0 && apt_compare_versions(versions[idx[k - 1]], versions[idx[k]]) < 0) ++r;
        rank[idx[k]] = r;
    }
    return rank;
}

} // namespace stomp_repo
