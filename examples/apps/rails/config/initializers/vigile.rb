# Vigile in front of this application: the identity headers it sets and the address it
# connects from. Header names match vigile.toml's [headers] section (these are its
# defaults); Rack reads `Remote-User` as HTTP_REMOTE_USER, which request.headers accepts
# under either spelling.
#
#   # vigile.toml
#   [upstream]
#   url = "http://127.0.0.1:3000"      # Puma, bound to 127.0.0.1
#   [headers]
#   user_value = "id"                  # stable id (default); "email" sends the address
module Vigile
  USER_HEADER = "Remote-User"
  EMAIL_HEADER = "Remote-Email"
  NAME_HEADER = "Remote-Name"
  GROUPS_HEADER = "Remote-Groups"

  # Addresses Vigile connects from. The headers are only believed from there: should the
  # application ever be reached directly, a client could otherwise name any member.
  TRUSTED_PEERS = ENV.fetch("VIGILE_PEERS", "127.0.0.1,::1").split(",").map(&:strip).freeze

  def self.trusted_peer?(request)
    # remote_addr is the TCP peer (Vigile), not X-Forwarded-For.
    TRUSTED_PEERS.include?(request.remote_addr)
  end
end

# Vigile sends X-Forwarded-For / X-Forwarded-Proto for the real client: let Rails read
# request.remote_ip and request.ssl? from them when they come from Vigile.
Rails.application.config.action_dispatch.trusted_proxies =
  Vigile::TRUSTED_PEERS.map { |peer| IPAddr.new(peer) }
