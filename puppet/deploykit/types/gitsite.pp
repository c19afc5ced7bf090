# One entry of the original's `gitconfigure` hiera hash (h_git_configure):
#   gitconfigure:
#     www: {site: www.example.com, repo: site, origin: 'git@git.example.com:site.git', target: /data/www.example.com}
# `site` names the clone (<clone_root>/<site>), `repo` is the repository name the hooks publish
# (the key when absent), `target` the work tree a trusting/atomic checkout writes (stomp-git)
# and the site a deploy-agent serves. `origin` and `base_tag` are the original's, kept so its data
# loads unchanged (the clone and its origin are made outside this module). `user`, `mode`, `branch`
# and `keep` are stomp-git's repo-list keys, optional here.
type Deploykit::Gitsite = Struct[{
  site                 => Pattern[/\A[A-Za-z0-9._-]+\z/],
  Optional[repo]       => Pattern[/\A[A-Za-z0-9._-]+\z/],
  Optional[origin]     => String[1],
  Optional[base_tag]   => String[1],
  Optional[target]     => Deploykit::Absolutepath,
  Optional[user]       => Pattern[/\A[a-z_][a-z0-9_-]*\z/],
  Optional[mode]       => Enum['normal', 'trusting', 'dangerous', 'puppetmaster', 'atomic'],
  Optional[branch]     => String[1],
  Optional[keep]       => Integer[1],
  Optional[controldir] => Deploykit::Absolutepath,
  Optional[sitetype]   => String[1],
}]
