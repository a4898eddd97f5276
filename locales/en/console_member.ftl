# Admin console, a member's page: contact state
member-contact-title = Contact details
member-unconfirmed = Not confirmed
member-confirmed-on = Confirmed on { $when } ({ $via })
member-confirmed-before = Confirmed (before confirmations were recorded)
member-no-mobile = None
member-via-activation = activation link
member-via-registration = company registration link
member-via-invitation = invitation link
member-via-link = link of a confirmation mail
member-via-code = code typed on the contact page
member-via-admin = vouched for by an admin
