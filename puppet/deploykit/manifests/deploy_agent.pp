# @summary deploy-agent: answers `deploy` requests on this host (the MCollective gitagent's
# successor; docs/deploy-protocol.md). Runs as root and drops to each repository's user.
#
# Its repositories come from the same `gitconfigure` hash as stomp-git's (the sites with a
# target; puppetmaster entries are stomp-git's alone), mapped as the
# original's facts were (`repo_<name>` = the clone, `sitedir_<name>` = the target,
# `controldir_<name>` = `<clone>/future-control`), plus `repos` in the agent's own form.
#
# @param gitconfigure the original's `gitconfigure` hash (hiera key `gitconfigure`)
# @param repos more repositories: name => {repo, sitedir, controldir, user, keep}
# @param clone_root where the gitconfigure clones live
# @param repo_user the user of gitconfigure entries that name none
# @param commands name => argv, or {argv, user, dir, env, timeout}: the whitelist of
#   `deploy exec NAME`
# @param policy ordered {caller, action, repo, effect} rules; first match wins, default deny
# @param identity the agent's name (default: the host name)
# @param settings more keys (`facts-file`, `classes-file`, `admin-listen`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::deploy_agent (
  Hash[String[1], Deploykit::Gitsite] $gitconfigure = lookup('gitconfigure', Hash, 'deep', {}),
  Hash[String[1], Hash[String[1], Data]] $repos = {},
  Deploykit::Absolutepath $clone_root = '/data/repo',
  Pattern[/\A[a-z_][a-z0-9_-]*\z/] $repo_user = 'www-data',
  Hash[Pattern[/\A[A-Za-z0-9._-]+\z/], Variant[Array[String[1], 1], Hash[String[1], Data]]] $commands = {},
  Array[Struct[{
        caller => String[1],
        action => String[1],
        repo   => String[1],
        effect => Enum['allow', 'deny'],
  }]] $policy = [],
  Optional[Pattern[/\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z/]] $identity = undef,
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'deploy-agent',
  Deploykit::Absolutepath $config_dir = '/etc/deploy-agent',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $bus = deploykit::bus($config_dir)
  $from_hiera = Hash($gitconfigure.filter |$key, $s| { $s['target'] != undef and $s['mode'] != 'puppetmaster' }.map |$key, $s| {
      $clone = "${clone_root}/${s['site']}"
      $entry = {
        'repo'       => $clone,
        'sitedir'    => $s['target'],
        'controldir' => $s['controldir'].lest || { "${clone}/future-control" },
        'user'       => $s['user'].lest || { $repo_user },
        'sitetype'   => $s['sitetype'],
        'keep'       => $s['keep'] ? { undef => undef, default => max($s['keep'], 2) },
      }.filter |$k, $v| { $v != undef }
      [$s['repo'].lest || { $key }, $entry]
  })

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'deploy-agent':
    package        => $package,
    user           => 'root',
    group          => 'root',
    config_file    => "${config_dir}/deploy-agent.yaml",
    secrets        => $bus['secrets'],
    service        => 'deploy-agent',
    manage_service => $manage_service,
    config         => epp('deploykit/deploy-agent.yaml.epp', {
        'bus'      => $bus['settings'],
        'repos'    => $from_hiera + $repos,
        'commands' => $commands,
        'policy'   => $policy,
        'settings' => { 'identity' => $identity }.filter |$k, $v| { $v != undef } + $settings,
    }),
  }
}
