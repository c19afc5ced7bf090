# puppet.apply's manifest: every deploykit class whose package the packaging build makes, with
# the data in tests/puppet/hiera/common.yaml. The git repositories are the test's ($facts from
# FACTER_dk_git_root); the hooks' and jenkins-helper's user is nobody (no git or jenkins user here).
include deploykit
include deploykit::stomp_git
include deploykit::stomp_jenkins
include deploykit::github_webhook
include deploykit::broker
include deploykit::stomp_repo
include deploykit::repo_poller
class { 'deploykit::jenkins_helper':
  user  => 'nobody',
  group => 'nogroup',
}
class { 'deploykit::hooks':
  user             => 'nobody',
  group            => 'nogroup',
  git_repositories => ["${facts['dk_git_root']}/site.git", $facts['dk_git_root']],
  svn              => true,
  svn_repositories => ["${facts['dk_git_root']}/svn/webapp"],
}
