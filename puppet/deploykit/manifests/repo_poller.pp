# @summary repo-poller: polls apt repositories' InRelease files and announces new package
# versions (for repositories that are not ours to hook, where reprepro-stomp cannot run).
#
# @param repositories {url, suites, components, architectures, packages, keyring, interval, ...}
# @param topic where package events go
# @param user the daemon's user
# @param settings more keys (`state-dir`, `admin-listen`, `workers`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::repo_poller (
  Array[Hash[String[1], Data]] $repositories = [],
  Deploykit::Topic $topic = 'future.package.updates',
  String[1] $user = 'repo-poller',
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'repo-poller',
  Deploykit::Absolutepath $config_dir = '/etc/repo-poller',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $bus = deploykit::bus($config_dir)

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'repo-poller':
    package        => $package,
    user           => $user,
    group          => $user,
    config_file    => "${config_dir}/repo-poller.yaml",
    secrets        => $bus['secrets'],
    service        => 'repo-poller',
    manage_service => $manage_service,
    config         => epp('deploykit/repo-poller.yaml.epp', {
        'bus'          => $bus['settings'],
        'topic'        => $topic,
        'repositories' => $repositories,
        'settings'     => $settings,
    }),
  }
}
