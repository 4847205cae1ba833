fn main() {
    stageleft_tool::gen_final!();
}
