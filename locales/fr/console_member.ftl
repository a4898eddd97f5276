# Console d'administration, page d'un membre : état de ses coordonnées
member-contact-title = Coordonnées
member-unconfirmed = Non confirmé
member-confirmed-on = Confirmé le { $when } ({ $via })
member-confirmed-before = Confirmé (avant que les confirmations ne soient enregistrées)
member-no-mobile = Aucun
member-via-activation = lien d'activation
member-via-registration = lien d'inscription de l'entreprise
member-via-invitation = lien d'invitation
member-via-link = lien d'un e-mail de confirmation
member-via-code = code saisi sur la page de coordonnées
member-via-admin = garanti par un administrateur
