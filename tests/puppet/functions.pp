# The module's functions on their own (run by tests/puppet/lint.sh with `puppet apply --noop`):
# each check fails the compile with what it got.
function dk_expect(String $what, Any $got, Any $want) {
  if $got != $want {
    fail("${what}: got ${got}, expected ${want}")
  }
  notice("ok: ${what}")
}

# A hiera value can never add a key, a comment or a document to a rendered config.
dk_expect('newline and colon quoted', deploykit::yaml("x\nevil: true"), '"x\nevil: true"')
dk_expect('comment quoted', deploykit::yaml('a #b'), '"a #b"')
dk_expect('document marker quoted', deploykit::yaml('--- x'), '"--- x"')
dk_expect('quote and backslash escaped', deploykit::yaml("a\"b\\c"), '"a\\"b\\\\c"')
dk_expect('YAML booleans stay strings', deploykit::yaml(['yes', 'No', 'on', 'null']), '["yes", "No", "on", "null"]')
dk_expect('plain words stay plain', deploykit::yaml({ 'listen-topic' => 'future.git.commits', 'f' => '/etc/x/y' }),
  '{listen-topic: future.git.commits, f: /etc/x/y}')
dk_expect('numbers and booleans', deploykit::yaml([1, 2.5, true]), '[1, 2.5, true]')

# The original's rserver, the password never in it.
dk_expect('rserver', deploykit::rserver(['b1:61613', 'b2:61613'], 'dk'),
  'failover://(stomp://dk@b1:61613,stomp://dk@b2:61613)')
dk_expect('anonymous rserver over TLS', deploykit::rserver(['b1:61614'], undef, 'stomp+ssl'), 'failover://(stomp+ssl://b1:61614)')

# h_git_configure: gitconfigure -> repo-list.
dk_expect('gitconfigure to repo-list', deploykit::git_repo_list({
      'www'  => {
        'site' => 'www.example.com', 'repo' => 'site', 'target' => '/data/www', 'origin' => 'git@x:site.git', 'base_tag' => 'v1',
      },
      'api'  => { 'site' => 'api.example.com' },
      'envs' => { 'site' => 'envs', 'user' => 'puppet', 'mode' => 'puppetmaster', 'target' => '/etc/puppet/environments', 'keep' => 3 },
  }, '/data/repo', 'www-data'), {
    'site' => { 'user' => 'www-data', 'repo' => '/data/repo/www.example.com', 'target' => '/data/www', 'mode' => 'trusting' },
    'api'  => { 'user' => 'www-data', 'repo' => '/data/repo/api.example.com' },
    'envs' => {
      'user' => 'puppet', 'repo' => '/data/repo/envs', 'target' => '/etc/puppet/environments', 'mode' => 'puppetmaster', 'keep' => 3,
    },
})
