# @summary stomp-jenkins: triggers Jenkins jobs on commit events.
#
# @param jenkins_url the Jenkins base URL
# @param jenkins_projects the original's `jenkins-projects` (repo => {project, ticket,
#   ignore_refs}, nested SVN Projects, or repo => TOKEN); Sensitive when it carries tickets
# @param credentials `user:apitoken` for Jenkins (the `credentials-file`, 0600)
# @param user the daemon's user (owns the secret files; reads the 0640 config)
# @param listen_topic where commit events arrive
# @param report_topic where the one-liners go
# @param settings more keys (`crumb`, `retries`, `admin-listen`, `replay-cache`, ...)
# @param package the package
# @param config_dir the config directory
# @param manage_service overrides deploykit::manage_service
class deploykit::stomp_jenkins (
  String[1] $jenkins_url = 'http://localhost:8080',
  Variant[Hash[String[1], Data], Sensitive[Hash[String[1], Data]]] $jenkins_projects = {},
  Optional[Sensitive[Pattern[/\A[^:\n]+:[^\n]+\z/]]] $credentials = undef,
  String[1] $user = 'stomp-jenkins',
  Deploykit::Topic $listen_topic = 'future.git.commits',
  Deploykit::Topic $report_topic = 'future.events.jenkins',
  Hash[String[1], Data] $settings = {},
  String[1] $package = 'stomp-jenkins',
  Deploykit::Absolutepath $config_dir = '/etc/stomp-jenkins',
  Optional[Boolean] $manage_service = undef,
) {
  include deploykit

  $bus = deploykit::bus($config_dir)
  $creds = $credentials ? {
    undef   => {},
    default => { "${config_dir}/jenkins.credentials" => Sensitive("${credentials.unwrap}\n") },
  }
  $projects = $jenkins_projects ? {
    Sensitive => $jenkins_projects.unwrap,
    default   => $jenkins_projects,
  }

  package { $package:
    ensure => $deploykit::package_ensure,
  }

  deploykit::daemon { 'stomp-jenkins':
    package        => $package,
    user           => $user,
    group          => $user,
    config_file    => "${config_dir}/stomp-jenkins.yaml",
    secrets        => $bus['secrets'] + $creds,
    service        => 'stomp-jenkins',
    manage_service => $manage_service,
    config         => epp('deploykit/stomp-jenkins.yaml.epp', {
        'bus'              => $bus['settings'],
        'listen_topic'     => $listen_topic,
        'report_topic'     => $report_topic,
        'jenkins_url'      => $jenkins_url,
        'jenkins_projects' => $projects,
        'settings'         => { 'credentials-file' => $creds.keys[0] }.filter |$k, $v| { $v != undef } + $settings,
    }),
  }
}
