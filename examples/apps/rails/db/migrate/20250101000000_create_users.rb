# Members as the application keeps them: keyed by Vigile's stable Remote-User id, with the
# email address and name refreshed from the headers at each request.
class CreateUsers < ActiveRecord::Migration[7.1]
  def change
    create_table :users do |t|
      t.string :vigile_id, null: false
      t.string :email
      t.string :name
      t.boolean :admin, null: false, default: false
      t.timestamps
    end
    add_index :users, :vigile_id, unique: true
  end
end
