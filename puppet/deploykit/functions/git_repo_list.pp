# @summary The original's `h_git_configure`: the `gitconfigure` hiera hash as stomp-git's
# `repo-list` entries.
#
# The original appended `<repo>: <clone>` (stomp-git's v1 line) per entry; this gives the v3 map
# form, keyed by the repository name the hooks publish (`repo`, or the entry's key):
#
#   {www => {site => 'www.example.com', repo => 'site', target => '/data/www.example.com'}}
#   # => {site => {user => 'www-data', repo => '/data/repo/www.example.com',
#   #              target => '/data/www.example.com', mode => 'trusting'}}
#
# An entry with a `target` and no `mode` gets `target_mode` (the original's sites were work
# trees checked out from the clone); one without a target is fetched only (`normal`).
#
# @param sites the gitconfigure hash
# @param clone_root where the clones live (`<clone_root>/<site>`), the original's /data/repo
# @param user the default repository user (the original's hard-coded www-data)
# @param target_mode the mode of entries that have a target and no mode
# @return [Hash] repo-list
function deploykit::git_repo_list(
  Hash[String[1], Deploykit::Gitsite] $sites,
  Deploykit::Absolutepath $clone_root,
  String[1] $user,
  Enum['trusting', 'atomic', 'puppetmaster'] $target_mode = 'trusting',
) >> Hash {
  $entries = $sites.map |$key, $s| {
    $name = $s['repo'].lest || { $key }
    $base = {
      'user' => $s['user'].lest || { $user },
      'repo' => "${clone_root}/${s['site']}",
    }
    $target = $s['target'] ? {
      undef   => {},
      default => { 'target' => $s['target'] },
    }
    $mode = $s['mode'] ? {
      undef   => $s['target'] ? { undef => {}, default => { 'mode' => $target_mode } },
      default => { 'mode' => $s['mode'] },
    }
    $extra = ['branch', 'keep'].filter |$k| { $s[$k] != undef }.reduce({}) |$m, $k| { $m + { $k => $s[$k] } }
    [$name, $base + $target + $mode + $extra]
  }
  $names = $entries.map |$e| { $e[0] }
  if $names.unique.length != $names.length {
    fail("deploykit: gitconfigure names one repository twice: ${names.sort.join(', ')}")
  }
  Hash($entries)
}
