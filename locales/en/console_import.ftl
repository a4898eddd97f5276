# Admin console: importing members from a CSV file (reached from Members)
import-link = Import members from a CSV file
import-title = Import members
import-back = ← Members
import-intro = A CSV file (comma-separated, saved as “CSV UTF-8”) whose first line names its columns: email (required), name, lang (fr or en), mobile, org (an organisation's id). Step 1 shows what would happen to each row; nothing is written until you confirm.
import-mode = What to do with each new address
import-mode-create = Create the accounts now (members then choose a password with “Forgot your password?”)
import-mode-invite = Email each address an invitation (they choose their own password when they accept)
import-confirmed = The addresses and mobile numbers in the file are known to be right: mark them confirmed (accounts created only)
import-file = CSV file (at most { $max })
import-preview-button = Preview
import-preview-title = Preview: nothing has been written yet
import-done-title = Import done
import-nothing-written = Nothing was imported.
import-nothing-to-do = Nothing to do: every row is refused or already there.
import-confirm-create = Create { $count ->
    [one] this account
   *[other] these { $count } accounts
}
import-confirm-invite = Invite { $count ->
    [one] this address
   *[other] these { $count } addresses
}
import-note-unconfirmed = The created accounts' addresses will be unconfirmed, and password-reset links only go to confirmed addresses: these members cannot choose a password until they confirm their address. Tick “known to be right” if they are, or invite them instead.
import-note-unconfirmed-done = These accounts' addresses are unconfirmed, and password-reset links only go to confirmed addresses: these members cannot choose a password (the only way to set one) until their address is confirmed.
import-another = Import another file
import-col-line = Line
import-col-org = Organisation
import-col-outcome = What happens
import-count-create = to create
import-count-invite = to invite
import-count-created = created
import-count-invited = invited
import-count-unchanged = already there, left as they are
import-count-refused = refused (line and reason below)
import-count-not-applied = not applied
import-will-create = Will be created
import-will-invite = Will be invited
import-created = Created
import-invited = Invited: the mail is on its way
import-exists = Already has an account: nothing to do
import-exists-pending = A sign-up waiting for activation holds this address: nothing to do
import-already-invited = Already invited (the invitation is valid until { $until }): nothing sent again
import-refused = Refused: nothing of this row is written
import-not-applied = Not applied (the import stopped before this row)
import-stopped = The import stopped at line { $line }: the store or the mail queue could not be reached. The rows before it are done; import the same file again to finish (nothing is done twice).
import-field-row = whole row
import-reason-width = { $found } field(s) where the first line names { $expected } (a missing or extra comma?)
import-reason-not-utf8 = not UTF-8 text (save the file as “CSV UTF-8”)
import-reason-value = “{ $value }”: { $reason }
import-reason-name-long = longer than { $max } characters
import-reason-name-hidden = contains a line break or another control or invisible character
import-reason-lang = expected fr, en or nothing
import-reason-org-shape = this is not an organisation id (the Organisations section shows them)
import-reason-duplicate = { $email } is already on line { $line }
import-reason-no-org = there is no organisation { $id } (the Organisations section shows them)
import-reason-org-full = the organisation { $company } is full: its { $seats } seat(s) are taken by members and pending invitations
import-reason-seat-withdrawn = the seat was withdrawn from the organisation's page meanwhile; import the file again
import-file-missing = Choose a CSV file to import.
import-file-too-large = The file is larger than { $max }. Split it into smaller files, or import it on the server with `vigile user import`.
import-file-not-csv = This is not a CSV file (a spreadsheet workbook?). From the spreadsheet, save it as “CSV UTF-8 (comma-separated)” and import that file.
import-file-empty = The file is empty. Its first line names the columns ({ $columns }).
import-file-too-many = The file has more than { $max } rows. Split it into smaller files, or import it on the server with `vigile user import`.
import-file-unreadable = Line { $line }: the file cannot be read ({ $error }).
import-header-not-utf8 = Line { $line }: column { $column } of the first line is not UTF-8 text (save the file as “CSV UTF-8”).
import-header-unnamed = Line { $line }: column { $column } has no name. The columns are: { $columns }.
import-header-unknown = Line { $line }: unknown column “{ $name }”. The columns are: { $columns }.
import-header-twice = Line { $line }: the column “{ $name }” appears twice.
import-header-no-email = Line { $line }: there is no “email” column.
import-form-broken = The form arrived incomplete. Choose the file again.
