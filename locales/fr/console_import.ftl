# Console d'administration : importer des membres depuis un fichier CSV (depuis Membres)
import-link = Importer des membres depuis un fichier CSV
import-title = Importer des membres
import-back = ← Membres
import-intro = Un fichier CSV (séparé par des virgules, enregistré en « CSV UTF-8 ») dont la première ligne nomme les colonnes : email (obligatoire), name, lang (fr ou en), mobile, org (l'identifiant d'une organisation). L'étape 1 montre ce qui arriverait à chaque ligne ; rien n'est enregistré avant votre confirmation.
import-mode = Que faire de chaque nouvelle adresse
import-mode-create = Créer les comptes maintenant (les membres choisissent ensuite un mot de passe avec « Mot de passe oublié ? »)
import-mode-invite = Envoyer une invitation à chaque adresse (chacun choisit son mot de passe en l'acceptant)
import-confirmed = Les adresses et numéros de mobile du fichier sont sûrs : les marquer comme confirmés (comptes créés seulement)
import-file = Fichier CSV ({ $max } au plus)
import-preview-button = Prévisualiser
import-preview-title = Aperçu : rien n'a encore été enregistré
import-done-title = Import terminé
import-nothing-written = Rien n'a été importé.
import-nothing-to-do = Rien à faire : chaque ligne est refusée ou déjà présente.
import-confirm-create = Créer { $count ->
    [one] ce compte
   *[other] ces { $count } comptes
}
import-confirm-invite = Inviter { $count ->
    [one] cette adresse
   *[other] ces { $count } adresses
}
import-note-unconfirmed = Les adresses des comptes créés ne seront pas confirmées, et les liens de réinitialisation ne partent que vers des adresses confirmées : ces membres ne pourront pas choisir de mot de passe avant d'avoir confirmé leur adresse. Cochez « sûrs » si elles le sont, ou invitez-les plutôt.
import-note-unconfirmed-done = Les adresses de ces comptes ne sont pas confirmées, et les liens de réinitialisation ne partent que vers des adresses confirmées : ces membres ne peuvent pas choisir de mot de passe (seul moyen d'en avoir un) tant que leur adresse n'est pas confirmée.
import-another = Importer un autre fichier
import-col-line = Ligne
import-col-org = Organisation
import-col-outcome = Ce qui se passe
import-count-create = à créer
import-count-invite = à inviter
import-count-created = créés
import-count-invited = invités
import-count-unchanged = déjà présents, laissés tels quels
import-count-refused = refusés (ligne et raison ci-dessous)
import-count-not-applied = non appliqués
import-will-create = Sera créé
import-will-invite = Sera invité
import-created = Créé
import-invited = Invité : l'e-mail est en route
import-exists = A déjà un compte : rien à faire
import-exists-pending = Une inscription en attente d'activation occupe cette adresse : rien à faire
import-already-invited = Déjà invité (l'invitation est valable jusqu'au { $until }) : rien n'est renvoyé
import-refused = Refusée : rien de cette ligne n'est enregistré
import-not-applied = Non appliquée (l'import s'est arrêté avant cette ligne)
import-stopped = L'import s'est arrêté à la ligne { $line } : la base ou la file des e-mails était injoignable. Les lignes précédentes sont faites ; importez de nouveau le même fichier pour terminer (rien n'est fait deux fois).
import-field-row = ligne entière
import-reason-width = { $found } champ(s) alors que la première ligne en nomme { $expected } (une virgule en trop ou en moins ?)
import-reason-not-utf8 = texte qui n'est pas en UTF-8 (enregistrez le fichier en « CSV UTF-8 »)
import-reason-value = « { $value } » : { $reason }
import-reason-name-long = plus de { $max } caractères
import-reason-name-hidden = contient un saut de ligne ou un autre caractère de contrôle ou invisible
import-reason-lang = attendu : fr, en ou rien
import-reason-org-shape = ce n'est pas un identifiant d'organisation (la section Organisations les montre)
import-reason-duplicate = { $email } figure déjà ligne { $line }
import-reason-no-org = il n'y a pas d'organisation { $id } (la section Organisations les montre)
import-reason-org-full = l'organisation { $company } est complète : ses { $seats } place(s) sont prises par des membres et des invitations en attente
import-reason-seat-withdrawn = la place a été retirée depuis la page de l'organisation entre-temps ; importez de nouveau le fichier
import-file-missing = Choisissez un fichier CSV à importer.
import-file-too-large = Le fichier dépasse { $max }. Découpez-le en fichiers plus petits, ou importez-le sur le serveur avec `vigile user import`.
import-file-not-csv = Ce n'est pas un fichier CSV (un classeur de tableur ?). Depuis le tableur, enregistrez-le en « CSV UTF-8 (séparateur : virgule) » et importez ce fichier.
import-file-empty = Le fichier est vide. Sa première ligne nomme les colonnes ({ $columns }).
import-file-too-many = Le fichier a plus de { $max } lignes. Découpez-le en fichiers plus petits, ou importez-le sur le serveur avec `vigile user import`.
import-file-unreadable = Ligne { $line } : le fichier est illisible ({ $error }).
import-header-not-utf8 = Ligne { $line } : la colonne { $column } de la première ligne n'est pas du texte UTF-8 (enregistrez le fichier en « CSV UTF-8 »).
import-header-unnamed = Ligne { $line } : la colonne { $column } n'a pas de nom. Les colonnes sont : { $columns }.
import-header-unknown = Ligne { $line } : colonne inconnue « { $name } ». Les colonnes sont : { $columns }.
import-header-twice = Ligne { $line } : la colonne « { $name } » apparaît deux fois.
import-header-no-email = Ligne { $line } : il n'y a pas de colonne « email ».
import-form-broken = Le formulaire est arrivé incomplet. Choisissez de nouveau le fichier.
