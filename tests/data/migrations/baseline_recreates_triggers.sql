-- A greenfield baseline: tables, then (re)created triggers and policies on them.
select set_config('search_path', 'public', false);
create extension if not exists "uuid-ossp";

create table if not exists boards (
  id uuid primary key default uuid_generate_v4(),
  title text not null,
  updated_at timestamptz default now()
);
create table if not exists cards (
  id uuid primary key default uuid_generate_v4(),
  board_id uuid not null references boards (id),
  body text
);
create index cards_board_idx on cards (board_id);
alter table boards enable row level security;

create or replace function touch_updated_at() returns trigger language plpgsql as $$
begin
  new.updated_at = now();
  return new;
end $$;

drop trigger if exists boards_touch on boards;
create trigger boards_touch before update on boards
  for each row execute function touch_updated_at();

drop policy if exists "boards are readable" on boards;
create policy "boards are readable" on boards for select using (true);
