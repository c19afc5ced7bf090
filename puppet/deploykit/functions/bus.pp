# @summary The broker part of one daemon's config, from the deploykit class: the settings (in
# the original's keys plus libbus's) and the secret files they name.
#
# @param dir the daemon's config directory; the secret files go there
# @param heartbeat whether the daemon sends heartbeats (long-running daemons only)
# @return [Hash] `settings` (key => value, in file order) and `secrets` (path => Sensitive content)
function deploykit::bus(Deploykit::Absolutepath $dir, Boolean $heartbeat = true) >> Hash {
  $passcode = $deploykit::password ? {
    undef   => {},
    default => { "${dir}/bus.passcode" => Sensitive("${deploykit::password.unwrap}\n") },
  }
  $keyring = $deploykit::signing_keys ? {
    undef   => {},
    default => {
      "${dir}/signing.keys" => Sensitive($deploykit::signing_keys.unwrap.map |$id, $secret| { "${id} ${secret}\n" }.join('')),
    },
  }
  $settings = {
    'rserver'            => $deploykit::rserver,
    'stomp-options'      => $deploykit::stomp_options,
    'passcode-file'      => $passcode.keys[0],
    'tls-ca-file'        => $deploykit::tls_ca_file,
    'wire-format'        => $deploykit::wire_format,
    'signing-key-file'   => $deploykit::signing_key_id ? { undef => undef, default => $keyring.keys[0] },
    'signing-key-id'     => $deploykit::signing_key_id,
    'verify-key-file'    => $keyring.keys[0],
    'require-signatures' => $deploykit::require_signatures ? { true => true, default => undef },
    'heartbeat-topic'    => $heartbeat ? { true => $deploykit::heartbeat_topic, default => undef },
  }.filter |$k, $v| { $v != undef } + $deploykit::extra_settings
  $result = { 'settings' => $settings, 'secrets' => $passcode + $keyring }
  $result
}
