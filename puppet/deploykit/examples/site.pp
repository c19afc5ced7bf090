# The example in README.md: a git server, a CI host and a web server in one manifest (apply one
# class per host in real life). Hiera data for it: examples/hiera/common.yaml.
class { 'deploykit':
  brokers      => ['broker01.example.com:61613', 'broker02.example.com:61613'],
  login        => 'deploykit',
  password     => Sensitive('change-me'),
  signing_keys => Sensitive({ 'site-2026' => 'a-secret-of-at-least-16-characters' }),
}
include deploykit::stomp_git
include deploykit::stomp_jenkins
class { 'deploykit::hooks':
  user             => 'git',
  git_repositories => ['/srv/git'],
}
