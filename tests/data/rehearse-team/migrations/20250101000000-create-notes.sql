-- expand: the notes table
create table notes (id bigserial primary key, body text not null, legacy_title text, legacy_tags text);
