# @summary stomp-repo: runs a scoped `apt-get update` when a watched package has a new version
# (what the original's stomp-repo was meant to do; `package_ensure => latest` elsewhere then
# installs it). Runs as root (apt).
#
# @param watch {package (fnmatch pattern), codename, component, architecture} entries
# @param sources_list the sources file the update is scoped to
# @param listen_topic where package announcements arrive
# @param report_topic where the one-liners go
# @param settings more keys (`result-topic`, `coalesce`, `post-update-command`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::stomp_repo (
  Array[Struct[{
        package                => String[1],
        Optional[codename]     => String[1],
        Optional[component]    => String[1],
        Optional[architecture] => String[1],
  }]] $watch = [],
  Optional[Deploykit::Absolutepath] $sources_list = undef,
  Deploykit::Topic $listen_topic = 'future.package.updates',
  Deploykit::Topic $report_topic = 'future.events.stomp-repo',
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'stomp-repo',
  Deploykit::Absolutepath $config_dir = '/etc/stomp-repo',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $bus = deploykit::bus($config_dir)

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'stomp-repo':
    package        => $package,
    user           => 'root',
    group          => 'root',
    config_file    => "${config_dir}/stomp-repo.yaml",
    secrets        => $bus['secrets'],
    service        => 'stomp-repo',
    manage_service => $manage_service,
    config         => epp('deploykit/stomp-repo.yaml.epp', {
        'bus'          => $bus['settings'],
        'listen_topic' => $listen_topic,
        'report_topic' => $report_topic,
        'watch'        => $watch,
        'settings'     => { 'sources-list' => $sources_list }.filter |$k, $v| { $v != undef } + $settings,
    }),
  }
}
