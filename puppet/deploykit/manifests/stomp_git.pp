# @summary stomp-git: fetches (and checks out) the site clones on every commit event.
#
# The repositories come from the original's hiera hash `gitconfigure` (h_git_configure): each
# site becomes a `repo-list` entry (deploykit::git_repo_list). Entries in `repo_list` are added as
# they are (stomp-git's own form). stomp-git runs as root and drops to each repository's user.
#
# @param gitconfigure the original's `gitconfigure` hash (hiera key `gitconfigure`)
# @param repo_list more repo-list entries, in stomp-git's form
# @param clone_root where the gitconfigure clones live (`<clone_root>/<site>`)
# @param repo_user the user of gitconfigure entries that name none
# @param target_mode the mode of gitconfigure entries with a target and no mode
# @param listen_topic where commit events arrive
# @param report_topic where the one-line reports go
# @param ssh_key the private key for ssh remotes (written 0600, root's, read before the drop)
# @param known_hosts the OpenSSH known_hosts file for ssh remotes
# @param credentials the https credentials file's content (docs/stomp-git.md)
# @param settings more keys (`workers`, `fetch-timeout`, `admin-listen`, `post-fetch-command`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::stomp_git (
  Hash[String[1], Deploykit::Gitsite] $gitconfigure = lookup('gitconfigure', Hash, 'deep', {}),
  Hash[String[1], Variant[Deploykit::Absolutepath, Hash]] $repo_list = {},
  Deploykit::Absolutepath $clone_root = '/data/repo',
  Pattern[/\A[a-z_][a-z0-9_-]*\z/] $repo_user = 'www-data',
  Enum['trusting', 'atomic', 'puppetmaster'] $target_mode = 'trusting',
  Deploykit::Topic $listen_topic = 'future.git.commits',
  Deploykit::Topic $report_topic = 'future.events.stomp-git',
  Optional[Sensitive[String[1]]] $ssh_key = undef,
  Optional[Deploykit::Absolutepath] $known_hosts = undef,
  Optional[Sensitive[String[1]]] $credentials = undef,
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'stomp-git',
  Deploykit::Absolutepath $config_dir = '/etc/stomp-git',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $bus = deploykit::bus($config_dir)
  $ssh = $ssh_key ? {
    undef   => {},
    default => { "${config_dir}/ssh-key" => $ssh_key },
  }
  $creds = $credentials ? {
    undef   => {},
    default => { "${config_dir}/git.credentials" => $credentials },
  }
  $own = {
    'ssh-key'          => $ssh.keys[0],
    'known-hosts'      => $known_hosts,
    'credentials-file' => $creds.keys[0],
  }.filter |$k, $v| { $v != undef }

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'stomp-git':
    package        => $package,
    user           => 'root',
    group          => 'root',
    config_file    => "${config_dir}/stomp-git.yaml",
    secrets        => $bus['secrets'] + $ssh + $creds,
    service        => 'stomp-git',
    manage_service => $manage_service,
    config         => epp('deploykit/stomp-git.yaml.epp', {
        'bus'          => $bus['settings'],
        'listen_topic' => $listen_topic,
        'report_topic' => $report_topic,
        'repo_list'    => deploykit::git_repo_list($gitconfigure, $clone_root, $repo_user, $target_mode) + $repo_list,
        'settings'     => $own + $settings,
    }),
  }
}
