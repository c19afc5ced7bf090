# @summary jenkins-helper: the tool Jenkins jobs call to announce a build's begin, success or
# failure (`jenkins-helper -b|-p|-c`). No service.
#
# @param user the user Jenkins runs jobs as: owns the secret files, reads the config
# @param group the group that reads the config (0640 root:group)
# @param settings the topics (`begin-topic`, `success-topic`, `failure-topic`, `report-topic`,
#   `build-topic`) when not the original's
# @param package the package
# @param config_dir the config directory
class deploykit::jenkins_helper (
  String[1] $user = 'jenkins',
  String[1] $group = $user,
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'jenkins-helper',
  Deploykit::Absolutepath $config_dir = '/etc/jenkins-helper',
) {
  include deploykit

  $bus = deploykit::bus($config_dir, false)

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'jenkins-helper':
    package     => $package,
    user        => $user,
    group       => $group,
    config_file => "${config_dir}/jenkins-helper.yaml",
    secrets     => $bus['secrets'],
    config      => epp('deploykit/jenkins-helper.yaml.epp', {
        'bus'      => $bus['settings'],
        'settings' => $settings,
    }),
  }
}
