# A Rails application behind Vigile: the gateway signs members in, the application reads
# who is asking from the request headers Vigile sets (see config/initializers/vigile.rb for
# their names). No Devise, no login form, no password in the application.
#
# Vigile removes any of these headers a client sends itself, so they can be trusted as
# long as the application is reachable through Vigile alone (bind Puma to 127.0.0.1 or a
# private network; see the initializer's check of the peer address).
class ApplicationController < ActionController::Base
  before_action :vigile_member
  helper_method :current_user, :signed_in?, :admin?

  private

  # The member Vigile vouches for, nil for an anonymous visitor on a public path.
  # Members are keyed by Remote-User: with Vigile's default [headers] user_value = "id"
  # it is a stable id that survives a change of email address.
  def vigile_member
    return @current_user = nil unless Vigile.trusted_peer?(request)

    id = request.headers[Vigile::USER_HEADER].presence
    return @current_user = nil if id.nil?

    user = User.find_or_initialize_by(vigile_id: id)
    user.email = request.headers[Vigile::EMAIL_HEADER].presence || user.email
    user.name = request.headers[Vigile::NAME_HEADER].presence || user.name
    user.admin = vigile_groups.include?("admin")
    user.save! if user.changed?
    @current_user = user
  end

  def vigile_groups
    request.headers[Vigile::GROUPS_HEADER].to_s.split(",").map(&:strip).reject(&:empty?)
  end

  def current_user
    @current_user
  end

  def signed_in?
    !@current_user.nil?
  end

  def admin?
    signed_in? && @current_user.admin?
  end

  # Pages for members only. Vigile's [access] rules already keep anonymous visitors out of
  # them; this is the application's own second lock.
  def require_member!
    head :unauthorized unless signed_in?
  end

  # Signing out is Vigile's: send the member to its logout page (a POST with its CSRF
  # token, from the account page) rather than clearing a Rails session.
  def sign_out_url
    "/_vigile/account"
  end
end
