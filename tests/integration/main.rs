mod emulator_api;
mod emulator_faults;
